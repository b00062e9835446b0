using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Kernels;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;

namespace KernelDiffusion.Tests;

/// <summary>Samplers on real models: respacing, the closed form of a zero model, determinism, batch independence,
/// the classifier gradient, and every refusal of a bad request.</summary>
[Collection("device")]
public sealed class SamplerTests(DeviceFixture fx)
{
    static ModelConfig TinyUNet(int classes = 4) => new()
    {
        ImageSize = 8, InChannels = 1, ModelChannels = 32, OutChannels = 1, NumResBlocks = 1, ChannelMult = [1, 2],
        NumClasses = classes, NumHeadChannels = 32, UseScaleShiftNorm = true,
    };

    static ModelConfig TinyClassifier(int size = 8) => new()
    {
        Model = "classifier", ImageSize = size, InChannels = 1, ModelChannels = 32, OutChannels = 3, NumResBlocks = 1, ChannelMult = [1, 2],
        NumHeadChannels = 32, UseScaleShiftNorm = true, Pool = "adaptive",
    };

    [Fact]
    public void RespacingFollowsGuidedDiffusion()
    {
        // size 10, 3 steps: stride 4.5, Python rounds 4.5 to 4 (half to even).
        Assert.Equal([0, 4, 9], SamplerPlan.SpaceTimesteps(10, "3"));
        Assert.Equal(Enumerable.Range(0, 25).Select(i => 40 * i), SamplerPlan.SpaceTimesteps(1000, "ddim25"));
        var sections = SamplerPlan.SpaceTimesteps(300, "10,15,20");
        Assert.Equal(45, sections.Length);
        Assert.Equal(10, sections.Count(t => t < 100));
        Assert.Equal(15, sections.Count(t => t is >= 100 and < 200));
        Assert.Equal([0, 11, 22, 33, 44, 55, 66, 77, 88, 99], sections.Take(10));
        Assert.Equal(299, sections[^1]);
        Assert.Equal(Enumerable.Range(0, 7), SamplerPlan.SpaceTimesteps(7, "7"));
        Assert.Contains("more than the schedule's 100", Assert.Throws<KdException>(() => SamplerPlan.SpaceTimesteps(100, "101")).Message);
        Assert.Contains("cannot take", Assert.Throws<KdException>(() => SamplerPlan.SpaceTimesteps(100, "60,30")).Message);
        Assert.Contains("stride", Assert.Throws<KdException>(() => SamplerPlan.SpaceTimesteps(10, "ddim7")).Message);
        Assert.Contains("not a positive count", Assert.Throws<KdException>(() => SamplerPlan.SpaceTimesteps(10, "5,x")).Message);
    }

    [Fact]
    public void RespacingEveryTimestepKeepsTheSchedule()
    {
        var s = NoiseSchedule.Named("cosine", 50);
        var r = SamplerPlan.Respace(s, Enumerable.Range(0, 50).ToArray());
        for (int t = 0; t < 50; t++) Assert.Equal(s.Betas[t], r.Betas[t], 12);
        // A respaced schedule keeps abar at the kept timesteps.
        var sparse = SamplerPlan.Respace(s, [3, 20, 49]);
        Assert.Equal(s.AlphasCumprod[20], sparse.AlphasCumprod[1], 12);
    }

    [Fact]
    public void DdimWithAZeroEpsilonModelFollowsTheClosedForm()
    {
        // A freshly initialised UNet's output conv is zero, so eps = 0 exactly: x0 = clip(x / sqrt(abar)) and
        // x_prev = sqrt(abar_prev) x0, from the same Philox noise, in float64.
        using var model = new UNet(fx.Device, TinyUNet());
        model.Initialize(3);
        var o = new SampleOptions { Sampler = "ddim", Steps = "5", Seed = 7 };
        var plan = GuidedSampler.Plan("linear", 100, o, learnsSigma: false);
        var got = GuidedSampler.Sample(fx.Device, new UNetDenoiser(model), null, plan, SampleBatch.Uniform([0, 1, 2], 3, 2f, 0, firstId: 4), o);
        var x = SamplingStep.Reference.InitialNoise([4, 5, 6], 64, 7);
        var ts = SamplerPlan.SpaceTimesteps(100, "5");
        Assert.Equal([0, 25, 50, 74, 99], ts);
        var s = NoiseSchedule.Named("linear", 100);
        for (int i = ts.Length - 1; i >= 0; i--)
        {
            double ab = s.AlphasCumprod[ts[i]], abPrev = i > 0 ? s.AlphasCumprod[ts[i - 1]] : 1;
            x = x.Select(v => Math.Sqrt(abPrev) * Math.Clamp(v / Math.Sqrt(ab), -1, 1)).ToArray();
        }
        Assert.True(Checks.KernelChecks.RelError(got, x) < 1e-5);
    }

    [Fact]
    public void SamplesAreReproducibleAndIndependentOfTheirBatch()
    {
        using var model = new UNet(fx.Device, TinyUNet());
        model.Initialize(5, randomizeConstants: true);
        var m = new UNetDenoiser(model);
        var o = new SampleOptions { Sampler = "ddpm", Steps = "4", Seed = 11, Clip = "dynamic" };
        var plan = GuidedSampler.Plan("linear", 50, o, false);
        float[] Draw(int[] labels, int first) => GuidedSampler.Sample(fx.Device, m, null, plan, SampleBatch.Uniform(labels, labels.Length, 1.5f, 0, first), o);
        var all = Draw([0, 1, 2, 1], 0);
        Assert.Equal(all, Draw([0, 1, 2, 1], 0));
        Assert.Equal(all, Draw([0, 1], 0).Concat(Draw([2, 1], 2)).ToArray());
        Assert.Equal(all.Skip(3 * 64), Draw([1], 3));
        Assert.Equal(all, GuidedSampler.SampleAll(fx.Device, m, null, plan, SampleBatch.Uniform([0, 1, 2, 1], 4, 1.5f, 0), o, batchSize: 3));
        Assert.NotEqual(all.Take(64), all.Skip(64).Take(64));
        Assert.NotEqual(all, GuidedSampler.Sample(fx.Device, m, null, plan, SampleBatch.Uniform([0, 1, 2, 1], 4, 1.5f, 0), o with { Seed = 12 }));
    }

    [Fact]
    public void ClassifierGradientMatchesFiniteDifferences()
    {
        var d = fx.Device;
        using var c = new Classifier(d, TinyClassifier());
        c.Initialize(9, randomizeConstants: true);
        using var guide = new ClassifierGradient(c);
        var rng = new Random(3);
        var xs = Enumerable.Range(0, 2 * 64).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] labels = [2, 0];
        using var x = d.FromArray(xs, [2, 1, 8, 8], "x");
        using var t = d.FromArray([300f, 700f], [2], "t");
        var g = guide.Gradient(x, t, labels).ToArray();
        d.Tape.Reset();
        double LogP(float[] v, int i)
        {
            using var xv = d.FromArray(v, [2, 1, 8, 8], "x_fd");
            using (d.Tape.NoGrad())
            {
                var lp = Autodiff.Ops.LogSoftmax(c.Forward(xv, t)).ToArray();
                d.Tape.Reset();
                return lp[i * 3 + labels[i]];
            }
        }
        foreach (int e in new[] { 0, 17, 63, 64, 100, 127 })
        {
            var plus = (float[])xs.Clone();
            var minus = (float[])xs.Clone();
            plus[e] += 0.01f;
            minus[e] -= 0.01f;
            double fd = (LogP(plus, e / 64) - LogP(minus, e / 64)) / 0.02;
            Assert.True(Math.Abs(fd - g[e]) < 0.03 * Math.Max(Math.Abs(fd), 0.05), $"element {e}: gradient {g[e]}, finite difference {fd}");
        }
        Assert.Contains(g, v => Math.Abs(v) > 1e-4);
    }

    [Fact]
    public void ClassifierGuidanceRunsThroughTheTape()
    {
        // A real classifier guiding a real UNet for two DDPM steps: guided samples differ from unguided ones, and no
        // weight gradient is left behind.
        var d = fx.Device;
        using var model = new UNet(d, TinyUNet());
        model.Initialize(5, randomizeConstants: true);
        using var c = new Classifier(d, TinyClassifier());
        c.Initialize(9, randomizeConstants: true);
        using var guide = new ClassifierGradient(c);
        foreach (var at in new[] { "xt", "mean" })
        {
            var o = new SampleOptions { Sampler = "ddpm", Steps = "2", Seed = 1, GradientAt = at };
            var plan = GuidedSampler.Plan("linear", 50, o, false);
            var plain = GuidedSampler.Sample(d, new UNetDenoiser(model), guide, plan, SampleBatch.Uniform([0, 2], 2, 0, 0), o);
            var guided = GuidedSampler.Sample(d, new UNetDenoiser(model), guide, plan, SampleBatch.Uniform([0, 2], 2, 0, 10), o);
            Assert.NotEqual(plain, guided);
            Assert.All(guided, v => Assert.True(float.IsFinite(v)));
        }
        Assert.All(c.Parameters(), p => Assert.Null(p.Grad));
    }

    [Fact]
    public void BadRequestsAreRefusedBeforeAnyWork()
    {
        var d = fx.Device;
        using var model = new UNet(d, TinyUNet());
        using var unconditional = new UNet(d, TinyUNet(classes: 0));
        using var small = new Classifier(d, TinyClassifier(size: 16));
        using var guide = new ClassifierGradient(small);
        var o = new SampleOptions { Steps = "5" };
        var plan = GuidedSampler.Plan("linear", 100, o, false);
        string Refusal(IDenoiser m, IGuidanceGradient? c, SampleBatch b, SampleOptions? oo = null)
            => Assert.Throws<KdException>(() => GuidedSampler.Sample(d, m, c, plan, b, oo ?? o)).Message;
        var cond = new UNetDenoiser(model);
        Assert.Contains("class 3 is outside the model's classes 0-2", Refusal(cond, null, SampleBatch.Uniform([0, 3], 2, 1, 0)));
        Assert.Contains("needs a classifier", Refusal(cond, null, SampleBatch.Uniform([0, 1], 2, 0, 1)));
        Assert.Contains("null label", Refusal(new UNetDenoiser(model, hasNullLabel: false), null, SampleBatch.Uniform([0, 1], 2, 1, 0)));
        Assert.Contains("unconditional", Refusal(new UNetDenoiser(unconditional), null, SampleBatch.Uniform(null, 2, 1, 0)));
        Assert.Contains("classifier sees 1x16x16", Refusal(cond, guide, SampleBatch.Uniform([0, 1], 2, 0, 1)));
        Assert.Contains("give a class per sample", Refusal(cond, null, SampleBatch.Uniform(null, 2, 0, 0)));
        Assert.Contains("--grad-at mean", Refusal(cond, null, SampleBatch.Uniform([0], 1, 0, 0), o with { GradientAt = "mean" }));
        Assert.Contains("--rescale", Refusal(cond, null, SampleBatch.Uniform([0], 1, 0, 0), o with { RescalePhi = 0.5 }));
        Assert.Contains("--clip", Refusal(cond, null, SampleBatch.Uniform([0], 1, 0, 0), o with { Clip = "soft" }));
        Assert.Contains("more than the schedule's", Assert.Throws<KdException>(() => GuidedSampler.Plan("linear", 100, o with { Steps = "200" }, false)).Message);
        Assert.Contains("logsnr", Assert.Throws<KdException>(() => GuidedSampler.Plan("linear", 100, o with { Sampler = "logsnr" }, false)).Message);
        Assert.Contains("--sampler logsnr", Assert.Throws<KdException>(() => GuidedSampler.Plan("logsnr", 1000, o, false)).Message);
        Assert.Contains("--variance", Assert.Throws<KdException>(() => GuidedSampler.Plan("linear", 100, o with { Sampler = "ddpm", Variance = "big" }, false)).Message);
    }

    [Fact]
    public void AGridHasOneTilePerImage()
    {
        var path = Path.Combine(Path.GetTempPath(), $"kd-grid-{Guid.NewGuid():N}.png");
        try
        {
            var pixels = Enumerable.Range(0, 5 * 3 * 6 * 7).Select(i => (float)Math.Sin(i)).ToArray();
            ImageGrid.Save(path, pixels, 5, 3, 6, 7, cols: 2);
            var info = Image.Identify(path);
            Assert.Equal(2 * (7 + 2) + 2, info.Width);
            Assert.Equal(3 * (6 + 2) + 2, info.Height);
        }
        finally { File.Delete(path); }
    }

    /// <summary>The schedule a checkpoint records: defaults for files that predate the keys, a bad T refused by name.</summary>
    [Fact]
    public void ScheduleMetadataIsReadOrRefused()
    {
        Assert.Equal(("linear", 1000), Training.TrainCheckpoint.ScheduleOf(new Dictionary<string, string>(), "m.safetensors"));
        Assert.Equal(("cosine", 4000), Training.TrainCheckpoint.ScheduleOf(new Dictionary<string, string> { ["schedule"] = "cosine", ["timesteps"] = "4000" }, "m.safetensors"));
        var e = Assert.Throws<KdException>(() => Training.TrainCheckpoint.ScheduleOf(new Dictionary<string, string> { ["timesteps"] = "lots" }, "m.safetensors"));
        Assert.Contains("m.safetensors", e.Message);
        Assert.Contains("lots", e.Message);
    }
}
