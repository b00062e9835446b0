using System.Globalization;
using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>How to sample. Guidance strengths are per sample (see <see cref="SampleBatch"/>); the rest is shared.</summary>
public sealed record SampleOptions
{
    /// <summary>ddpm | ddim | logsnr (the log-SNR sampler needs a model trained on the logsnr schedule).</summary>
    public string Sampler { get; init; } = "ddim";
    /// <summary>guided-diffusion's timestep respacing ("250", "10,15,20", "ddim25"); a count for the log-SNR sampler.</summary>
    public string Steps { get; init; } = "25";
    public double Eta { get; init; }
    /// <summary>DDPM variance: auto (learned for learn_sigma models, else fixed-large as guided-diffusion), fixed-small,
    /// fixed-large, learned.</summary>
    public string Variance { get; init; } = "auto";
    /// <summary>The log-SNR sampler's variance interpolation v.</summary>
    public double LogSnrV { get; init; } = 0.3;
    /// <summary>x0 clipping: none | static ([-1, 1]) | dynamic (at <see cref="Percentile"/> of |x0|, Saharia et al.).</summary>
    public string Clip { get; init; } = "static";
    public double Percentile { get; init; } = 0.995;
    /// <summary>Where the classifier gradient is taken: xt (guided-diffusion's choice) or mean (at the unguided
    /// posterior mean; ancestral samplers only).</summary>
    public string GradientAt { get; init; } = "xt";
    /// <summary>Guide only where the noise level sigma = sqrt((1 - abar) / abar) lies in [IntervalLow, IntervalHigh]
    /// (Kynkäänniemi et al. 2024).</summary>
    public double IntervalLow { get; init; }
    public double IntervalHigh { get; init; } = double.PositiveInfinity;
    /// <summary>CFG rescale phi (Lin et al. 2024); 0 is off.</summary>
    public double RescalePhi { get; init; }
    /// <summary>CFG++ (Chung et al. 2024): DDIM renoises with the unconditional eps; use guidance scales lambda in
    /// [0, 1] (w = lambda - 1).</summary>
    public bool CfgPlusPlus { get; init; }
    public ulong Seed { get; init; }
}

/// <summary>The samples to draw: a label per sample (null for an unconditional model without classifier guidance),
/// a CFG weight w per sample (eps~ = (1 + w) eps(x, c) - w eps(x)), a classifier scale s per sample, and the id of the
/// first sample: sample i's noise depends only on (seed, FirstId + i).</summary>
public sealed record SampleBatch(int[]? Labels, int Count, float[]? CfgWeights = null, float[]? ClassifierScales = null, int FirstId = 0)
{
    public static SampleBatch Uniform(int[]? labels, int count, float cfg, float classifier, int firstId = 0)
        => new(labels, count, Enumerable.Repeat(cfg, count).ToArray(), Enumerable.Repeat(classifier, count).ToArray(), firstId);
}

/// <summary>Samples with every sampler and guidance this engine has. Per step: one forward of the model (of 2N samples
/// with CFG: conditional then unconditional), for classifier guidance one forward and backward of the classifier, the
/// optional per-sample reductions (CFG rescale, dynamic thresholding) and one fused step kernel.</summary>
public static class GuidedSampler
{
    /// <summary>The steps for a schedule ("linear" | "cosine" with <paramref name="timesteps"/>, or "logsnr").</summary>
    public static PlannedStep[] Plan(string schedule, int timesteps, SampleOptions o, bool learnsSigma)
    {
        if (o.Sampler == "logsnr")
        {
            if (schedule != "logsnr") throw new KdException($"--sampler logsnr needs a model trained on the logsnr schedule; this one used '{schedule}' (use ddpm or ddim)");
            if (!int.TryParse(o.Steps, NumberStyles.None, CultureInfo.InvariantCulture, out int n))
                throw new KdException($"--steps '{o.Steps}': the log-SNR sampler takes a plain count");
            return SamplerPlan.LogSnr(new LogSnrSchedule(), n, o.LogSnrV);
        }
        if (schedule == "logsnr") throw new KdException($"--sampler {o.Sampler}: the model was trained on the continuous logsnr schedule (use --sampler logsnr)");
        var s = NoiseSchedule.Named(schedule, timesteps);
        var use = SamplerPlan.SpaceTimesteps(s.T, o.Steps);
        return o.Sampler switch
        {
            "ddpm" => SamplerPlan.Ddpm(s, use, o.Variance == "auto" ? (learnsSigma ? "learned" : "fixed-large") : o.Variance),
            "ddim" => SamplerPlan.Ddim(s, use, o.Eta),
            _ => throw new KdException($"--sampler '{o.Sampler}' is not one of {string.Join(", ", SamplerPlan.Samplers)}"),
        };
    }

    /// <summary>Refuses every inconsistent request before any work, with what to change.</summary>
    public static void Validate(IDenoiser model, IGuidanceGradient? classifier, SampleBatch b, SampleOptions o)
    {
        void Fail(string m) => throw new KdException("sample: " + m);
        if (b.Count < 1) Fail($"{b.Count} samples requested");
        if (b.Labels != null && b.Labels.Length != b.Count) Fail($"{b.Labels.Length} labels for {b.Count} samples");
        if (b.CfgWeights != null && b.CfgWeights.Length != b.Count) Fail($"{b.CfgWeights.Length} CFG scales for {b.Count} samples");
        if (b.ClassifierScales != null && b.ClassifierScales.Length != b.Count) Fail($"{b.ClassifierScales.Length} classifier scales for {b.Count} samples");
        bool cfg = b.CfgWeights?.Any(w => w != 0) == true, guided = b.ClassifierScales?.Any(s => s != 0) == true;
        int realClasses = model.NumClasses - (model.NullLabel != null ? 1 : 0);
        if (model.NumClasses > 0 && b.Labels == null) Fail($"the model is class-conditional ({realClasses} classes): give a class per sample");
        if (b.Labels != null)
        {
            int limit = model.NumClasses > 0 ? realClasses : classifier?.NumClasses ?? 0;
            if (model.NumClasses == 0 && !guided) Fail("labels were given, but the model is unconditional and no classifier guides it");
            foreach (int y in b.Labels)
                if (y < 0 || y >= limit) Fail($"class {y} is outside the model's classes 0-{limit - 1}");
        }
        if (cfg && model.NullLabel == null)
            Fail(model.NumClasses == 0 ? "classifier-free guidance needs a class-conditional model; this one is unconditional"
                : "classifier-free guidance needs a null label, and this model was trained without label dropout (p_uncond 0): use --guidance none or classifier");
        if (guided && classifier == null) Fail("classifier guidance needs a classifier (--classifier FILE)");
        if (classifier != null)
        {
            if (classifier.Channels != model.Channels || classifier.ImageSize != model.ImageSize)
                Fail($"the classifier sees {classifier.Channels}x{classifier.ImageSize}x{classifier.ImageSize} images, the model makes " +
                     $"{model.Channels}x{model.ImageSize}x{model.ImageSize}: use a classifier trained at the model's size");
            if (guided && b.Labels!.Any(y => y >= classifier.NumClasses))
                Fail($"class {b.Labels!.Max()} is outside the classifier's {classifier.NumClasses} classes");
        }
        if (o.Clip is not ("none" or "static" or "dynamic")) Fail($"--clip '{o.Clip}' is not none, static or dynamic");
        if (!(o.Percentile is > 0 and <= 1)) Fail($"--percentile {o.Percentile} must lie in (0, 1]");
        if (o.GradientAt is not ("xt" or "mean")) Fail($"--grad-at '{o.GradientAt}' is not xt or mean");
        if (o.GradientAt == "mean" && o.Sampler == "ddim") Fail("--grad-at mean needs an ancestral sampler (ddpm or logsnr); DDIM guides the score at x_t");
        if (o.Variance == "learned" && !model.LearnsSigma) Fail("--variance learned needs a model trained with learn_sigma (out_channels = 2 x in_channels)");
        if (o.RescalePhi is < 0 or > 1) Fail($"--rescale {o.RescalePhi} must lie in [0, 1]");
        if (o.RescalePhi > 0 && !cfg) Fail("--rescale applies to classifier-free guidance; no sample has a CFG scale");
        if (o.CfgPlusPlus && o.Sampler != "ddim") Fail("CFG++ is defined for DDIM (--sampler ddim)");
        if (!(o.IntervalLow <= o.IntervalHigh) || o.IntervalLow < 0) Fail($"--interval {o.IntervalLow},{o.IntervalHigh} is not a range of noise levels");
    }

    /// <summary>Draws a large request in batches of at most <paramref name="batchSize"/> samples (ids continue across
    /// batches, so the result does not depend on the batch size); <paramref name="progress"/> gets (steps done, steps in
    /// all) over every batch.</summary>
    public static float[] SampleAll(ComputeDevice d, IDenoiser model, IGuidanceGradient? classifier, PlannedStep[] plan, SampleBatch all, SampleOptions o,
        int batchSize, Action<int, int>? progress = null)
    {
        if (batchSize < 1) throw new KdException($"sample: batch size {batchSize} must be positive");
        Validate(model, classifier, all, o);
        int batches = (all.Count + batchSize - 1) / batchSize, per = model.Channels * model.ImageSize * model.ImageSize;
        var pixels = new float[(long)all.Count * per];
        var w = all.CfgWeights ?? new float[all.Count];
        var s = all.ClassifierScales ?? new float[all.Count];
        for (int first = 0, bi = 0; first < all.Count; first += batchSize, bi++)
        {
            int n = Math.Min(batchSize, all.Count - first), done = bi * plan.Length;
            var part = new SampleBatch(all.Labels?[first..(first + n)], n, w[first..(first + n)], s[first..(first + n)], all.FirstId + first);
            var x = Sample(d, model, classifier, plan, part, o, progress == null ? null : (k, _) => progress(done + k, batches * plan.Length));
            Array.Copy(x, 0, pixels, (long)first * per, x.Length);
        }
        return pixels;
    }

    /// <summary>Draws the samples: [Count, C, H, W] floats, about [-1, 1]. <paramref name="progress"/> gets (step done, steps).</summary>
    public static float[] Sample(ComputeDevice d, IDenoiser model, IGuidanceGradient? classifier, PlannedStep[] plan, SampleBatch b, SampleOptions o,
        Action<int, int>? progress = null)
    {
        Validate(model, classifier, b, o);
        int n = b.Count, ch = model.Channels, size = model.ImageSize, hw = size * size, per = ch * hw;
        int[]? modelLabels = model.NumClasses > 0 ? b.Labels : null;
        var w = b.CfgWeights ?? new float[n];
        var s = b.ClassifierScales ?? new float[n];
        using var x = d.Empty([n, ch, size, size], "x");
        using var ps = d.Empty([n, SamplingStep.PerSample], "per_sample");
        using var ids = d.Accelerator.Allocate1D(Enumerable.Range(b.FirstId, n).ToArray());
        using var tModel = d.Empty([n], "t");
        using var tTwice = d.Empty([2 * n], "t_cfg");
        int[]? cfgLabels = modelLabels == null ? null : [.. modelLabels, .. Enumerable.Repeat(model.NullLabel ?? 0, n)];
        var host = new float[n * SamplingStep.PerSample];
        SamplingStep.InitialNoise(d.Accelerator, x.View, ids.View, n, per, o.Seed);
        for (int k = 0; k < plan.Length; k++)
        {
            var step = plan[k];
            bool inside = step.NoiseLevel >= o.IntervalLow && step.NoiseLevel <= o.IntervalHigh;
            for (int i = 0; i < n; i++)
            {
                host[i * SamplingStep.PerSample + SamplingStep.SlotW] = inside ? w[i] : 0;
                host[i * SamplingStep.PerSample + SamplingStep.SlotS] = inside ? s[i] : 0;
                host[i * SamplingStep.PerSample + SamplingStep.SlotEpsScale] = 1;
                host[i * SamplingStep.PerSample + SamplingStep.SlotThreshold] = o.Clip == "none" ? 0 : 1;
            }
            bool cfg = inside && w.Any(v => v != 0), guided = inside && classifier != null && s.Any(v => v != 0);
            ps.CopyFrom(host);
            var c = step.Constants;
            c.Cfg = cfg ? 1 : 0;
            c.HasVariance = model.LearnsSigma ? 1 : 0;
            c.Guide = guided ? (o.Sampler == "ddim" ? 1 : 2) : 0;
            c.Direction = o.CfgPlusPlus ? 1 : 0;
            c.Step = (uint)k;

            tModel.Fill((float)step.ModelTime);
            Tensor output;
            if (cfg)
            {
                tTwice.Fill((float)step.ModelTime);
                output = model.Predict(Ops.Concat(x, x, 0), tTwice, cfgLabels);
            }
            else output = model.Predict(x, tModel, modelLabels);
            int rows = cfg ? 2 * n : n, cout = model.LearnsSigma ? 2 * ch : ch;
            if (!output.Shape.SequenceEqual([rows, cout, size, size]))
                throw new KdException($"sample: the model returned {output.ShapeText}, expected [{rows},{cout},{size},{size}]");
            if (cfg && o.RescalePhi > 0)
            {
                d.Profiler?.Mark(d, "cfg_rescale");
                SamplingStep.Rescale(d.Accelerator, output.View, ps.View, n, ch, hw, model.LearnsSigma, (float)o.RescalePhi);
            }
            Tensor? g = guided && o.GradientAt == "xt" ? classifier!.Gradient(x, tModel, b.Labels!) : null;
            if (o.Clip == "dynamic")
            {
                d.Profiler?.Mark(d, "dynamic_threshold");
                SamplingStep.Threshold(d.Accelerator, x.View, output.View, (g ?? x).View, ps.View, n, ch, hw, c, (float)o.Percentile);
            }
            if (guided && o.GradientAt == "mean")
            {
                var mean = d.Temporary(x.Shape, "unguided_mean");
                d.Profiler?.Mark(d, "sampling_step");
                SamplingStep.Step(d.Accelerator, x.View, output.View, x.View, ps.View, ids.View, mean.View, n, ch, hw, c with { Guide = 0, Noise = 0 }, o.Seed);
                g = classifier!.Gradient(mean, tModel, b.Labels!);
            }
            d.Profiler?.Mark(d, "sampling_step");
            SamplingStep.Step(d.Accelerator, x.View, output.View, (g ?? x).View, ps.View, ids.View, x.View, n, ch, hw, c, o.Seed);
            d.Tape.Reset();
            progress?.Invoke(k + 1, plan.Length);
        }
        return x.ToArray();
    }
}
