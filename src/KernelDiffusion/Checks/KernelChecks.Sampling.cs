using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

public static partial class KernelChecks
{
    /// <summary>The fused sampling step and its per-sample reductions against the unfused float64 reference, on random
    /// inputs (rounded to float first, as the device sees them) and poisoned outputs, at ragged shapes: 3 samples of
    /// 2 channels x 5x7 with ids that are not 0..n-1, each sample with its own w, s, eps scale and clip threshold.</summary>
    static void AddSampling(List<Case> list)
    {
        const int n = 3, ch = 2, hw = 35;
        int[] ids = [5, 0, 9];
        var schedule = NoiseSchedule.Named("linear", 1000);
        var use = SamplerPlan.SpaceTimesteps(1000, "50");
        var ddpm = SamplerPlan.Ddpm(schedule, use, "learned")[30].Constants;
        var ddim = SamplerPlan.Ddim(schedule, use, 0.5)[20].Constants;
        var logsnr = SamplerPlan.LogSnr(new LogSnrSchedule(), 20, 0.3)[12].Constants;

        static double[] Floats(double[] v) => v.Select(a => (double)(float)a).ToArray();
        double[] PerSample(Random r, bool clip) => Floats(Enumerable.Range(0, n).SelectMany(i => new[]
        {
            3 * r.NextDouble(), 2 * r.NextDouble(), 0.8 + 0.4 * r.NextDouble(), !clip ? 0 : i == 0 ? 1 : i == 1 ? 0 : 1.2 + r.NextDouble(),
        }).ToArray());
        // Model outputs: eps rows, then (with variance) v in [-1, 1]; for CFG the unconditional rows follow.
        double[] ModelOutput(Random r, bool cfg, bool variance)
        {
            int rows = cfg ? 2 * n : n, cout = variance ? 2 * ch : ch;
            return Floats(Enumerable.Range(0, rows * cout * hw).Select(e => variance && e / hw % cout >= ch ? 2 * r.NextDouble() - 1 : Randn(r, 1)[0]).ToArray());
        }

        void Step(string name, StepConstants k, bool clip)
        {
            list.Add(new Case($"sampling_step.{name}", $"[{n},{ch},5,7]", (d, r) =>
            {
                var x = Floats(Randn(r, n * ch * hw));
                var model = ModelOutput(r, k.Cfg != 0, k.HasVariance != 0);
                var grad = Floats(Randn(r, n * ch * hw));
                var ps = PerSample(r, clip);
                ulong seed = (ulong)r.NextInt64();
                using var tx = Upload(d, x, [n, ch, 5, 7], "x");
                using var tm = Upload(d, model, [model.Length], "model");
                using var tg = Upload(d, grad, [grad.Length], "grad");
                using var tp = Upload(d, ps, [ps.Length], "per_sample");
                using var tids = d.Accelerator.Allocate1D(ids);
                using var next = d.Empty([n, ch, 5, 7], "next");
                SamplingStep.Step(d.Accelerator, tx.View, tm.View, tg.View, tp.View, tids.View, next.View, n, ch, hw, k, seed);
                var want = SamplingStep.Reference.Step(x, model, k.Guide != 0 ? grad : null, ps, ids, n, ch, hw, k, seed);
                return (RelError(next.ToArray(), want), Fwd, "");
            }));
        }
        Step("ddpm_learned_cfg_mean_guidance", ddpm with { Cfg = 1, HasVariance = 1, Guide = 2, Step = 7 }, clip: true);
        Step("ddim_eta_score_guidance_cfgpp", ddim with { Cfg = 1, Guide = 1, Direction = 1, Step = 3 }, clip: true);
        Step("logsnr_unclipped_variance_ignored", logsnr with { HasVariance = 1, Step = 11 }, clip: false);

        list.Add(new Case("sampling.initial_noise", $"[{n},{ch},5,7]", (d, r) =>
        {
            ulong seed = (ulong)r.NextInt64();
            using var tids = d.Accelerator.Allocate1D(ids);
            using var x = d.Empty([n, ch, 5, 7], "x");
            SamplingStep.InitialNoise(d.Accelerator, x.View, tids.View, n, ch * hw, seed);
            return (RelError(x.ToArray(), SamplingStep.Reference.InitialNoise(ids, ch * hw, seed)), Fwd, "");
        }));
        list.Add(new Case("sampling.cfg_rescale", $"[{n},{ch},5,7]", (d, r) =>
        {
            var model = ModelOutput(r, cfg: true, variance: true);
            var ps = PerSample(r, clip: true);
            using var tm = Upload(d, model, [model.Length], "model");
            using var tp = Upload(d, ps, [ps.Length], "per_sample");
            SamplingStep.Rescale(d.Accelerator, tm.View, tp.View, n, ch, hw, hasVariance: true, phi: 0.7f);
            var got = tp.ToArray().Where((_, i) => i % SamplingStep.PerSample == SamplingStep.SlotEpsScale).ToArray();
            return (RelError(got, SamplingStep.Reference.RescaleFactors(model, ps, n, ch, hw, hasVariance: true, phi: 0.7)), Fwd, "phi 0.7");
        }));
        list.Add(new Case("sampling.dynamic_threshold", $"[{n},{ch},5,7]", (d, r) =>
        {
            var k = ddim with { Cfg = 1, Guide = 1 };
            // Spread x so that the three samples' percentiles land above 1 (thresholded) and below (clamped to 1).
            var x = Floats(Randn(r, n * ch * hw).Select((v, e) => v * (e / (ch * hw) + 0.2)).ToArray());
            var model = ModelOutput(r, cfg: true, variance: false);
            var grad = Floats(Randn(r, n * ch * hw));
            var ps = PerSample(r, clip: true);
            using var tx = Upload(d, x, [x.Length], "x");
            using var tm = Upload(d, model, [model.Length], "model");
            using var tg = Upload(d, grad, [grad.Length], "grad");
            using var tp = Upload(d, ps, [ps.Length], "per_sample");
            SamplingStep.Threshold(d.Accelerator, tx.View, tm.View, tg.View, tp.View, n, ch, hw, k, 0.9f);
            var got = tp.ToArray().Where((_, i) => i % SamplingStep.PerSample == SamplingStep.SlotThreshold).ToArray();
            return (RelError(got, SamplingStep.Reference.Thresholds(x, model, grad, ps, n, ch, hw, k, (double)0.9f)), Fwd,
                $"thresholds {string.Join(", ", got.Select(v => v.ToString("F3")))}");
        }));
    }
}
