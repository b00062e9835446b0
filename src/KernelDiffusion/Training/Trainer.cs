using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Kernels;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>What one optimiser step did.</summary>
public sealed record StepResult(long Step, double Loss, double GradNorm, double Lr, bool Skipped, double[]? QuarterAccuracy);

/// <summary>Trains a UNet (epsilon prediction, mean-squared error; with learn_sigma, i.e. twice the input channels
/// out, guided-diffusion's hybrid loss: MSE + the variational-bound term times T/1000 for the learned-range
/// variance; classifier-free joint training by dropping labels to the null label with probability p_uncond) or a noise-aware classifier (cross-entropy on x_t at uniform t).
/// Every random choice of step s (timesteps, label drops, noise, dropout masks, the data order) is a counter-based
/// function of (seed, s), so a resumed run continues bitwise where it stopped.</summary>
public sealed class Trainer : IDisposable
{
    // Independent Philox streams, one per kind of draw.
    const ulong StreamTime = 0x7431, StreamLabel = 0x6c62, StreamNoise = 0x6e6f, StreamDropout = 0x6470;

    readonly ComputeDevice d;
    readonly ImageDataSet data;
    readonly NoiseSchedule? schedule;
    readonly LogSnrSchedule? logSnr;
    readonly Tensor x0, coefSignal, coefNoise, times, labels, vbCoefs;
    readonly float[] hostImages, hostSignal, hostNoise, hostTimes, hostLabels, hostVb;
    readonly int[] order;
    long orderEpoch = -1;
    Tensor? stepSums;

    public DiffusionTrunk Model { get; }
    public TrainOptions Options { get; }
    public AdamW Optimizer { get; }
    public IReadOnlyList<Ema> Emas { get; }
    public long Step { get; internal set; }
    public long SkippedSteps { get; internal set; }
    public int BadInARow { get; internal set; }

    public Trainer(ComputeDevice d, DiffusionTrunk model, ImageDataSet data, TrainOptions options)
    {
        options.Validate();
        var c = model.Config;
        if (data.Channels != c.InChannels || data.Height != c.ImageSize || data.Width != c.ImageSize)
            throw new KdException($"train: data '{data.Source}' has images {data.Channels}x{data.Height}x{data.Width}, the model wants {c.InChannels}x{c.ImageSize}x{c.ImageSize}");
        if (options.Kind == "classifier" && c.OutChannels < data.NumClasses)
            throw new KdException($"train: the classifier has {c.OutChannels} outputs but '{data.Source}' has {data.NumClasses} classes");
        if (options.Kind == "unet" && c.NumClasses > 0 && c.NumClasses != data.NumClasses + 1)
            throw new KdException($"train: num_classes {c.NumClasses} should be the data's {data.NumClasses} classes plus one null label for classifier-free guidance");
        bool learnSigma = options.Kind == "unet" && c.OutChannels == 2 * c.InChannels;
        if (options.Kind == "unet" && c.OutChannels != c.InChannels && !learnSigma)
            throw new KdException($"train: out_channels {c.OutChannels} must be in_channels {c.InChannels} (epsilon) or twice it (learn_sigma)");
        if (learnSigma && options.Schedule == "logsnr")
            throw new KdException("train: learn_sigma (out_channels = 2 x in_channels) needs a discrete schedule (linear or cosine), not logsnr");
        this.d = d;
        this.data = data;
        Model = model;
        Options = options;
        if (options.Schedule == "logsnr") logSnr = new LogSnrSchedule();
        else schedule = NoiseSchedule.Named(options.Schedule, options.Timesteps);
        Optimizer = new AdamW(model.Parameters(), options.Lr, options.WeightDecay) { Beta1 = options.Beta1, Beta2 = options.Beta2, Eps = options.AdamEps };
        Emas = options.EmaRates.Select(r => new Ema(model.Parameters(), r)).ToList();
        int m = options.Micro;
        x0 = d.Empty([m, data.Channels, data.Height, data.Width], "x0");
        coefSignal = d.Empty([m, 1, 1, 1], "sqrt_alphas_cumprod_t");
        coefNoise = d.Empty([m, 1, 1, 1], "sqrt_one_minus_alphas_cumprod_t");
        times = d.Empty([m], "t");
        labels = d.Empty([m], "y");
        vbCoefs = d.Empty([m, DiffusionLoss.Coefs], "vb_coefficients");
        hostVb = new float[m * DiffusionLoss.Coefs];
        hostImages = new float[x0.Length];
        (hostSignal, hostNoise, hostTimes, hostLabels) = (new float[m], new float[m], new float[m], new float[m]);
        order = new int[data.Count];
    }

    /// <summary>Uniform draws of step s, micro-batch k, for one stream: a pure function of (seed, s, k).</summary>
    double[] Uniforms(ulong stream, int micro, int count)
        => Philox.Reference.Draw(count, Options.Seed ^ (stream << 48), ((ulong)Step << 24) + ((ulong)micro << 16), normal: false);

    /// <summary>Index of the data set's sample at global position p: epochs are seeded permutations.</summary>
    int SampleAt(long p)
    {
        long epoch = p / data.Count;
        if (epoch != orderEpoch)
        {
            for (int i = 0; i < order.Length; i++) order[i] = i;
            ulong state = Options.Seed ^ ((ulong)epoch * 0x9E3779B97F4A7C15UL);
            for (int i = order.Length - 1; i > 0; i--)
            {
                state += 0x9E3779B97F4A7C15UL;   // SplitMix64: stable across .NET versions, unlike System.Random
                ulong z = state;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                z ^= z >> 31;
                int j = (int)(z % (ulong)(i + 1));
                (order[i], order[j]) = (order[j], order[i]);
            }
            orderEpoch = epoch;
        }
        return order[(int)(p % data.Count)];
    }

    /// <summary>Fills the device inputs of micro-batch k and returns x_t with the noise it was drawn with.</summary>
    (Tensor Xt, Tensor Eps) NoisyInputs(int micro)
    {
        int m = Options.Micro, len = data.ImageLength;
        var ut = Uniforms(StreamTime, micro, m);
        var ul = Uniforms(StreamLabel, micro, 2 * m);
        long basePos = Step * Options.Batch + (long)micro * m;
        for (int i = 0; i < m; i++)
        {
            int s = SampleAt(basePos + i);
            data.CopyImage(s, hostImages, i * len, flip: Options.Flip && ul[m + i] < 0.5);
            int label = data.Labels[s];
            // Classifier-free guidance: the null label is the model's last label row.
            if (Options.Kind == "unet" && Model.Config.NumClasses > 0 && ul[i] < Options.PUncond) label = Model.Config.NumClasses - 1;
            hostLabels[i] = label;
            if (Options.Clean)
                (hostSignal[i], hostNoise[i], hostTimes[i]) = (1f, 0f, 0f);
            else if (schedule != null)
            {
                int t = Math.Min(schedule.T - 1, (int)(ut[i] * schedule.T));
                (hostSignal[i], hostNoise[i], hostTimes[i]) = ((float)schedule.SqrtAlphasCumprod[t], (float)schedule.SqrtOneMinusAlphasCumprod[t], t);
                var vb = hostVb.AsSpan(i * DiffusionLoss.Coefs, DiffusionLoss.Coefs);
                vb[0] = (float)(1 / schedule.SqrtAlphasCumprod[t]);
                vb[1] = (float)Math.Sqrt(1 / schedule.AlphasCumprod[t] - 1);
                vb[2] = (float)schedule.PosteriorMeanCoef1[t];
                vb[3] = (float)schedule.PosteriorMeanCoef2[t];
                vb[4] = (float)schedule.PosteriorLogVarianceClipped[t];
                vb[5] = (float)Math.Log(schedule.Betas[t]);
                vb[6] = t == 0 ? 1 : 0;
            }
            else
            {
                double lambda = logSnr!.Lambda(ut[i]);
                (hostSignal[i], hostNoise[i], hostTimes[i]) = ((float)LogSnrSchedule.Alpha(lambda), (float)LogSnrSchedule.Sigma(lambda), (float)LogSnrSchedule.ModelTime(ut[i]));
            }
        }
        x0.CopyFrom(hostImages);
        coefSignal.CopyFrom(hostSignal);
        coefNoise.CopyFrom(hostNoise);
        times.CopyFrom(hostTimes);
        labels.CopyFrom(hostLabels);
        if (schedule != null) vbCoefs.CopyFrom(hostVb);
        var eps = Ops.Normal(d, x0.Shape, Options.Seed ^ (StreamNoise << 48), ((ulong)Step << 28) + ((ulong)micro << 22));
        return (Ops.Add(Ops.Mul(x0, coefSignal), Ops.Mul(eps, coefNoise)), eps);
    }

    ForwardState State(int micro) => new()
    {
        Training = true,
        DropoutSeed = Options.Seed ^ (StreamDropout << 48),
        DropoutOffset = ((ulong)Step << 36) + ((ulong)micro << 30),
    };

    /// <summary>One optimiser step over Batch samples in Batch / MicroBatch micro-batches.</summary>
    public StepResult TrainStep()
    {
        int micros = Options.Batch / Options.Micro;
        var correct = new double[4];
        var seen = new double[4];
        // Profiler marks: zeroing the gradients, the batch's host work and uploads, and the step's tail (gradient norm,
        // clipping, AdamW, EMA), which otherwise go to the op before them (the last backward node: the time embedding's
        // first Linear).
        d.Profiler?.Mark(d, "zero_grad");
        Optimizer.ZeroGrad();
        for (int k = 0; k < micros; k++)
        {
            d.Profiler?.Mark(d, "batch_inputs");
            var (xt, noise) = NoisyInputs(k);
            Tensor l;
            if (Model is UNet unet)
            {
                var output = unet.Forward(xt, times, Model.Config.NumClasses > 0 ? labels : null, State(k));
                int ch = data.Channels;
                var eps = output.Dim(1) == ch ? output : Ops.Slice(output, 1, 0, ch);   // learn_sigma: eps is the first half
                var diff = Ops.Sub(eps, noise);
                l = Ops.Mean(Ops.Mul(diff, diff));
                if (output.Dim(1) == 2 * ch)
                {
                    // The hybrid loss's variational-bound term trains the variance values; eps enters it detached.
                    var vb = Ops.LearnedRangeVb(eps, Ops.Slice(output, 1, ch, ch), xt, x0, vbCoefs);
                    l = Ops.Add(l, Ops.Scale(Ops.Mean(vb), schedule!.T / 1000f));
                }
            }
            else
            {
                var logits = ((Classifier)Model).Forward(xt, times, State(k));
                l = Ops.Mean(Ops.CrossEntropy(logits, labels));
                CountCorrect(logits.ToArray(), logits.Dim(1), correct, seen);
            }
            d.Tape.Backward(micros == 1 ? l : Ops.Scale(l, 1f / micros));
            // Each micro-batch's loss waits in the step buffer: one read per step, not one per micro-batch.
            StepBuffer(micros).View.SubView(Reduce.SumOfSquaresPartials(d.Accelerator) + k, 1).CopyFrom(d.Accelerator.DefaultStream, l.View);
            KernelCache.Count("copy.device");
        }
        d.Profiler?.Mark(d, "optimizer");
        var (norm, microLosses) = ReadStepBuffer();
        double loss = microLosses.Average();
        double lr = Options.LrAt(Step);
        bool bad = !double.IsFinite(loss) || !double.IsFinite(norm);
        if (bad)
        {
            SkippedSteps++;
            BadInARow++;
            Optimizer.ZeroGrad();
        }
        else
        {
            BadInARow = 0;
            if (Options.ClipNorm > 0 && norm > Options.ClipNorm)
            {
                var all = Optimizer.Gradients;   // every gradient in one launch
                Elementwise.Unary(d.Accelerator, UnaryOp.Affine, all.View, all.View, (float)(Options.ClipNorm / (norm + 1e-6)), 0, all.Length,
                    Ops.UnaryVersion(d, all.Length));
            }
            Optimizer.LearningRate = lr;
            Optimizer.Step();
            foreach (var e in Emas) e.Update(Optimizer.StepCount - 1);
        }
        d.Tape.Reset();
        var result = new StepResult(Step, loss, norm, lr, bad,
            Options.Kind == "classifier" ? correct.Select((c, i) => seen[i] > 0 ? c / seen[i] : double.NaN).ToArray() : null);
        Step++;
        if (BadInARow >= Options.MaxBadSteps)
            throw new KdException($"train: {BadInARow} steps in a row had a non-finite loss or gradient (last loss {loss}, gradient norm {norm}); " +
                                  "stopping; the last checkpoint is intact");
        return result;
    }

    /// <summary>Accuracy per quarter of the timestep range (the classifier's labels are never dropped).</summary>
    void CountCorrect(float[] logits, int classes, double[] correct, double[] seen)
    {
        for (int i = 0; i < Options.Micro; i++)
        {
            int best = 0;
            for (int c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
            double frac = schedule != null ? hostTimes[i] / schedule.T : hostTimes[i] / 1000.0;
            int q = Math.Min(3, (int)(frac * 4));
            seen[q]++;
            if (best == (int)hostLabels[i]) correct[q]++;
        }
    }

    /// <summary>[partial sums of squared gradients (Reduce.SumOfSquares), then each micro-batch's loss]: read once per step.</summary>
    Tensor StepBuffer(int micros) => stepSums ??= d.Empty([Reduce.SumOfSquaresPartials(d.Accelerator) + micros], "step_sums");

    /// <summary>The global gradient norm sqrt(sum of squared gradients) over the optimiser's gradient arena (one
    /// launch), and the micro-batch losses, in one read.</summary>
    (double Norm, float[] Losses) ReadStepBuffer()
    {
        int parts = Reduce.SumOfSquaresPartials(d.Accelerator);
        var buffer = StepBuffer(Options.Batch / Options.Micro);
        var grads = Optimizer.Gradients;
        Reduce.SumOfSquares(d.Accelerator, grads.View, buffer.View.SubView(0, parts), grads.Length);
        var all = buffer.ToArray();
        return (Math.Sqrt(all.Take(parts).Sum(v => (double)v)), all[parts..]);
    }

    public void Dispose()
    {
        foreach (var t in new[] { x0, coefSignal, coefNoise, times, labels, vbCoefs }) t.Dispose();
        stepSums?.Dispose();
        Optimizer.Dispose();
        foreach (var e in Emas) e.Dispose();
    }
}
