using System.Globalization;
using System.Security.Cryptography;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Data;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;

namespace KernelDiffusion.Tests;

[Collection("device")]
public sealed class TrainerTests(DeviceFixture fx) : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("kd-train").FullName;
    public void Dispose() => Directory.Delete(dir, recursive: true);

    static readonly ModelConfig Tiny = new()
    {
        ImageSize = 8, InChannels = 1, ModelChannels = 32, OutChannels = 1, NumResBlocks = 1, AttentionResolutions = [2],
        ChannelMult = [1, 2], NumClasses = 4, NumHeadChannels = 32, UseScaleShiftNorm = true, ResblockUpdown = true, Dropout = 0.1,
    };

    static readonly TrainOptions Options = new()
    {
        Steps = 10, Batch = 4, MicroBatch = 2, Lr = 1e-3, Warmup = 3, Anneal = true, ClipNorm = 0.5, EmaRates = [0.99, 0.9],
        PUncond = 0.3, Seed = 11, Flip = true,
    };

    /// <summary>Synthetic 8x8 images of 3 classes (a bright row whose position is the class), values in [-1, 1].</summary>
    static ImageDataSet Synthetic(int n = 20, float fill = 0)
    {
        var pixels = new float[n * 64];
        var labels = new int[n];
        var rng = new Random(5);
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 3;
            for (int p = 0; p < 64; p++)
                pixels[i * 64 + p] = float.IsNaN(fill) ? float.NaN : (p / 8 == 2 * labels[i] + 1 ? 0.9f : -0.9f) + 0.1f * (float)(rng.NextDouble() - 0.5);
        }
        return new ImageDataSet { Source = "synthetic", Count = n, Channels = 1, Height = 8, Width = 8, Pixels = pixels, Labels = labels, ClassNames = ["a", "b", "c"] };
    }

    Trainer Fresh(ImageDataSet data, TrainOptions o, ModelConfig? c = null)
    {
        var cfg = c ?? Tiny;
        DiffusionTrunk model = cfg.IsClassifier ? new Classifier(fx.Device, cfg) : new UNet(fx.Device, cfg);
        model.Initialize(o.Seed);
        return new Trainer(fx.Device, model, data, o);
    }

    static float[][] Everything(Trainer t)
        => t.Model.Parameters().Concat(t.Emas.SelectMany(e => e.Shadows)).Concat(t.Optimizer.State.SelectMany(s => new[] { s.M, s.V }))
            .Select(p => p.ToArray()).ToArray();

    /// <summary>The step's gradient norm (one launch over the gradient arena) is the float64 norm of every parameter's
    /// gradient, and clipping (one launch) scales them all to the clip norm.</summary>
    [Theory]
    [InlineData(0.0)]
    [InlineData(1e-3)]
    public void TheGradientNormCoversEveryParameterAndClippingScalesThemAll(double clip)
    {
        using var t = Fresh(Synthetic(), Options with { ClipNorm = clip });
        var r = t.TrainStep();
        double norm = Math.Sqrt(t.Model.Parameters().Sum(p => p.Grad!.ToArray().Sum(v => (double)v * v)));
        if (clip == 0) Assert.Equal(r.GradNorm, norm, r.GradNorm * 1e-5);
        else
        {
            Assert.True(r.GradNorm > 100 * clip, $"the test wants a norm well above the clip: {r.GradNorm}");
            Assert.Equal(clip, norm, clip * 1e-4);
        }
        t.Model.Dispose();
    }

    [Fact]
    public void FivePlusFiveResumedStepsEqualTenStepsBitwise()
    {
        var data = Synthetic();
        float[][] straight;
        using (var t = Fresh(data, Options))
        {
            for (int i = 0; i < 10; i++) t.TrainStep();
            straight = Everything(t);
            t.Model.Dispose();
        }
        using (var t = Fresh(data, Options))
        {
            for (int i = 0; i < 5; i++) t.TrainStep();
            TrainCheckpoint.Save(dir, t);
            t.Model.Dispose();
        }
        using (var t = TrainCheckpoint.Resume(fx.Device, dir, data, TrainCheckpoint.OptionsOf(dir)))
        {
            Assert.Equal(5, t.Step);
            for (int i = 0; i < 5; i++) t.TrainStep();
            var resumed = Everything(t);
            Assert.Equal(straight.Length, resumed.Length);
            for (int i = 0; i < straight.Length; i++) Assert.Equal(straight[i], resumed[i]);
            t.Model.Dispose();
        }
        // The plain model file holds the first EMA's weights and loads as a model.
        using var m = KernelDiffusion.Checkpoints.ModelCheckpoint.Load(fx.Device, Path.Combine(dir, TrainCheckpoint.ModelFile));
        Assert.Equal(Tiny.ToJson(), m.Config.ToJson());
    }

    [Fact]
    public void TheStateFileNamesEveryParameterMomentAndAverageAsBefore()
    {
        using var t = Fresh(Synthetic(), Options);
        t.TrainStep();
        t.TrainStep();
        TrainCheckpoint.Save(dir, t);
        var file = SafeTensorsFile.Read(Path.Combine(dir, TrainCheckpoint.StateFile));
        var named = t.Model.NamedParameters().ToList();
        var expected = named.Select(p => ("model." + p.Name, p.Param))
            .Concat(t.Emas.SelectMany(e => named.Select((p, i) => ($"ema_{e.Rate.ToString(CultureInfo.InvariantCulture)}.{p.Name}", e.Shadows[i]))))
            .Concat(named.Select((p, i) => ("adam_m." + p.Name, t.Optimizer.State[i].M)))
            .Concat(named.Select((p, i) => ("adam_v." + p.Name, t.Optimizer.State[i].V))).ToList();
        Assert.Equal(expected.Select(x => x.Item1).Order(), file.Tensors.Select(x => x.Name).Order());
        Assert.Contains(file.Tensors, x => x.Name == "adam_m.out.2.bias");
        Assert.Contains(file.Tensors, x => x.Name == "ema_0.9.out.2.weight");
        foreach (var (name, tensor) in expected)
        {
            Assert.Equal(tensor.Shape.Select(v => (long)v), file.Info(name).Shape);
            Assert.Equal(tensor.ToArray(), file.ReadFloat32(name));
        }
        Assert.Contains(file.ReadFloat32("adam_v.out.2.weight"), v => v != 0);
        t.Model.Dispose();
    }

    [Fact]
    public void NonFiniteStepsAreSkippedAndTheRunStopsLeavingTheCheckpointIntact()
    {
        using (var good = Fresh(Synthetic(), Options))
        {
            good.TrainStep();
            TrainCheckpoint.Save(dir, good);
            good.Model.Dispose();
        }
        var before = SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, TrainCheckpoint.StateFile)));
        using var t = Fresh(Synthetic(fill: float.NaN), Options with { MaxBadSteps = 3 });
        var weights = t.Model.Parameters().First().ToArray();
        Assert.True(t.TrainStep().Skipped);
        Assert.True(t.TrainStep().Skipped);
        var e = Assert.Throws<KdException>(() => t.TrainStep());
        Assert.Contains("3 steps in a row had a non-finite loss or gradient", e.Message);
        Assert.Equal(3, t.SkippedSteps);
        Assert.Equal(weights, t.Model.Parameters().First().ToArray());   // no update from a bad step
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, TrainCheckpoint.StateFile))));
        t.Model.Dispose();
    }

    [Fact]
    public void LearnSigmaTrainsTheVarianceHalfThroughTheHybridLoss()
    {
        var c = Tiny with { OutChannels = 2, Dropout = 0 };
        using var t = Fresh(Synthetic(), Options with { ClipNorm = 0 }, c);
        var s = t.TrainStep();
        Assert.True(double.IsFinite(s.Loss));
        // out.2 is the last conv: output channel 1 is the variance value v, which only the bound term trains.
        var outConv = t.Model.NamedParameters().Single(p => p.Name == "out.2.weight").Param;
        var g = outConv.Grad!.ToArray();
        int perChannel = g.Length / 2;
        Assert.Contains(g.Skip(perChannel), v => v != 0);
        var e = Assert.Throws<KdException>(() => Fresh(Synthetic(), Options with { Schedule = "logsnr" }, c));
        Assert.Contains("learn_sigma", e.Message);
        t.Model.Dispose();
        fx.Device.Tape.Reset();
    }

    [Fact]
    public void MismatchedDataOrLabelsAreRefusedBeforeTraining()
    {
        var e = Assert.Throws<KdException>(() => Fresh(Synthetic(), Options, Tiny with { NumClasses = 3 }));
        Assert.Contains("num_classes 3 should be the data's 3 classes plus one null label", e.Message);
        var small = Tiny with { ImageSize = 16 };
        e = Assert.Throws<KdException>(() => Fresh(Synthetic(), Options, small));
        Assert.Contains("has images 1x8x8, the model wants 1x16x16", e.Message);
        fx.Device.Tape.Reset();
    }

    [Fact]
    public void TheClassifierLearnsOnNoisedImagesAndReportsAccuracyPerQuarter()
    {
        var c = Tiny with { Model = "classifier", OutChannels = 3, NumClasses = 0, Pool = "attention", Dropout = 0 };
        using var t = Fresh(Synthetic(60), Options with { Kind = "classifier", Batch = 12, MicroBatch = 12, Lr = 3e-3, Warmup = 0, Anneal = false, Flip = false }, c);
        var first = t.TrainStep();
        Assert.Equal(4, first.QuarterAccuracy!.Length);
        StepResult last = first;
        for (int i = 0; i < 40; i++) last = t.TrainStep();
        // Chance is ln 3 = 1.10; heavily noised samples stay near it, so the mean falls to about 0.9.
        Assert.True(last.Loss < 0.95 * Math.Log(3), $"loss {first.Loss} -> {last.Loss} (chance: ln 3 = {Math.Log(3):F3})");
        t.Model.Dispose();
    }

    [Fact]
    public void TheEmaRateWarmsUp()
    {
        // After optimiser step 0 the rate is 1/10, not 0.9999: a short run's average follows the weights.
        var d = fx.Device;
        using var p = d.FromArray([1f, 2f], [2], "p");
        using var ema = new Ema([p], 0.9999);
        p.CopyFrom([3f, 6f]);
        ema.Update(0);
        var first = ema.Shadows[0].ToArray();
        Assert.Equal(0.1 * 1 + 0.9 * 3, first[0], 5);
        Assert.Equal(0.1 * 2 + 0.9 * 6, first[1], 5);
        p.CopyFrom([5f, 5f]);
        ema.Update(1_000_000);
        Assert.Equal(0.9999 * first[0] + 0.0001 * 5, ema.Shadows[0].ToArray()[0], 4);
    }
}
