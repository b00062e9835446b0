using KernelDiffusion.Data;
using KernelDiffusion.Evaluation;
using KernelDiffusion.Nn;
using KernelDiffusion.Training;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>The metrics measure what they claim, with features from an evaluation classifier trained on clean fixture
/// images (pooled to 7x7) inside the test: two halves of the real images are close, and FID grows as one half is
/// blurred or noised more; real images score a higher Inception-style score than noise. (What FID and precision/recall
/// compute is checked against closed forms in MetricsTests.)</summary>
[Collection("device")]
public sealed class EvaluationTests(DeviceFixture fx, ITestOutputHelper log)
{
    static readonly ModelConfig Net = new()
    {
        Model = "classifier", ImageSize = 7, InChannels = 1, ModelChannels = 32, OutChannels = 10, NumResBlocks = 1, ChannelMult = [1],
        NumHeadChannels = 32, UseScaleShiftNorm = true, Pool = "attention",
    };

    // Trained once for the class (about 20 s); the device fixture outlives every test of the collection.
    static readonly object Gate = new();
    static Classifier? trained;
    Classifier net { get { lock (Gate) return trained ??= Train(fx); } }

    static Classifier Train(DeviceFixture fx)
    {
        var net = new Classifier(fx.Device, Net);
        net.Initialize(4);
        using var t = new Trainer(fx.Device, net, FixtureTrainingTests.Fixture(4), new TrainOptions { Kind = "classifier", Clean = true, Batch = 32, Lr = 3e-3, Seed = 2, EmaRates = [0.9] });
        for (int i = 0; i < 60; i++) t.TrainStep();
        return net;
    }

    FeatureSet Features(float[] pixels, int count) => FeatureSet.Extract(fx.Device, net, pixels, count, batch: 64);

    static float[] Blur(float[] px, int passes)
    {
        var cur = (float[])px.Clone();
        for (int p = 0; p < passes; p++)
        {
            var next = new float[cur.Length];
            for (int i = 0; i < cur.Length / 49; i++)
                for (int r = 0; r < 7; r++)
                    for (int c = 0; c < 7; c++)
                    {
                        float sum = 0;
                        int n = 0;
                        for (int dr = -1; dr <= 1; dr++)
                            for (int dc = -1; dc <= 1; dc++)
                                if (r + dr is >= 0 and < 7 && c + dc is >= 0 and < 7) { sum += cur[i * 49 + (r + dr) * 7 + c + dc]; n++; }
                        next[i * 49 + r * 7 + c] = sum / n;
                    }
            cur = next;
        }
        return cur;
    }

    [Fact]
    public void FidIsSmallBetweenRealHalvesAndGrowsWithBlurAndNoise()
    {
        var a = FixtureTrainingTests.Fixture(4, 0, 150);
        var b = FixtureTrainingTests.Fixture(4, 150, 150);
        var fa = Features(a.Pixels, 150);
        double Fid(float[] pixels) => Evaluator.Compare(Features(pixels, 150), null, fa, "half A").Fid;
        var blurred = new[] { 0, 1, 2, 4 }.Select(p => Fid(Blur(b.Pixels, p))).ToArray();
        var rng = new Random(3);
        var noised = new[] { 0.5, 1.0, 1.5 }.Select(s => Fid(b.Pixels.Select(v => (float)(v + s * (rng.NextDouble() * 2 - 1))).ToArray())).ToArray();
        log.WriteLine($"FID of half B against half A: blur passes 0,1,2,4: {string.Join(", ", blurred.Select(v => v.ToString("F3")))}; noise 0.5,1,1.5: {string.Join(", ", noised.Select(v => v.ToString("F3")))}");
        for (int i = 1; i < blurred.Length; i++) Assert.True(blurred[i] > blurred[i - 1], $"blur: FID {blurred[i - 1]:F3} then {blurred[i]:F3}");
        Assert.True(noised[0] > blurred[0] && noised[1] > noised[0] && noised[2] > noised[1], "noise: FID must grow with the noise");
        Assert.True(blurred[0] < 0.5 * blurred[^1], "real halves are not clearly closer than heavily blurred ones");
    }

    [Fact]
    public void RealImagesScoreHigherThanNoiseAndMatchThemselves()
    {
        var real = FixtureTrainingTests.Fixture(4, 0, 300);
        var rng = new Random(5);
        var noise = Enumerable.Range(0, real.Pixels.Length).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var fr = Features(real.Pixels, 300);
        var fn = Features(noise, 300);
        var onReal = Evaluator.Compare(Features(FixtureTrainingTests.Fixture(4, 0, 300).Pixels, 300), real.Labels, fr, "real");
        var onNoise = Evaluator.Compare(fn, real.Labels, fr, "real");
        log.WriteLine($"real: IS {onReal.IsMean:F3}, precision {onReal.Precision:F3}, recall {onReal.Recall:F3}, accuracy {onReal.Accuracy:P1}; " +
                      $"noise: IS {onNoise.IsMean:F3}, precision {onNoise.Precision:F3}, recall {onNoise.Recall:F3}, FID {onNoise.Fid:F2}");
        Assert.True(onReal.IsMean > onNoise.IsMean, $"IS of real {onReal.IsMean:F3} does not exceed IS of noise {onNoise.IsMean:F3}");
        Assert.True(onReal.Fid < 1e-6 && onReal.Precision == 1 && onReal.Recall == 1, "a set against itself");
        // Precision and recall are checked on synthetic features with known overlap (MetricsTests): a 32-feature net
        // this small places many noise images inside the real images' 3-NN balls.
        Assert.True(onReal.Accuracy > 0.5, $"the evaluation classifier learned its training images poorly: {onReal.Accuracy:P1}");
    }

    [Fact]
    public void SamplesRoundTripThroughNpzAndReferenceFeaturesAreCached()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"kd-eval-{Guid.NewGuid():N}");
        try
        {
            var set = FixtureTrainingTests.Fixture(4, 0, 20);
            var npz = Path.Combine(dir, "samples.npz");
            Directory.CreateDirectory(dir);
            var bytes = ImageGrid.ToUint8Nhwc(set.Pixels, 20, 1, 7, 7);
            Npz.WriteImages(npz, bytes, 20, 7, 7, 1, set.Labels);
            var (pixels, count, labels) = ReferenceImages.FromNpz(npz, 7, 1);
            Assert.Equal(20, count);
            Assert.Equal(set.Labels, labels);
            Assert.Equal(bytes.Select(v => v / 127.5f - 1f), pixels);
            var netPath = Path.Combine(dir, "net.safetensors");
            Checkpoints.ModelCheckpoint.Save(netPath, net);
            var first = ReferenceImages.Features(fx.Device, net, netPath, npz, "fixture", dir, 0, out _, out bool cached1);
            var second = ReferenceImages.Features(fx.Device, net, netPath, npz, "fixture", dir, 0, out _, out bool cached2);
            Assert.False(cached1);
            Assert.True(cached2);
            Assert.Equal(first.Pooled, second.Pooled);
            Assert.Equal(first.Probs, second.Probs);
            Assert.Contains("7x7", Assert.Throws<Runtime.KdException>(() => ReferenceImages.FromNpz(npz, 8, 1)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void TheScoreDoesNotDependOnSamplesBeingSortedByClass()
    {
        // 100 confident samples, 10 per class in class order as kd sample writes them: splits of consecutive rows would
        // each hold one class and score 1; the evaluator splits a fixed shuffle instead.
        var rng = new Random(1);
        var probs = new float[100 * 10];
        for (int i = 0; i < 100; i++) probs[i * 10 + i / 10] = 1;
        var pooled = Enumerable.Range(0, 100 * 4).Select(_ => (float)rng.NextDouble()).ToArray();
        var set = new FeatureSet(100, pooled, 4, pooled, 4, probs, 10);
        var r = Evaluator.Compare(set, Enumerable.Range(0, 100).Select(i => i / 10).ToArray(), set, "itself");
        log.WriteLine($"IS of class-sorted one-hot samples: {r.IsMean:F2} ± {r.IsStd:F2}");
        Assert.True(r.IsMean > 4, $"IS {r.IsMean:F2}: the splits are not mixed");
        Assert.Equal(1.0, r.Accuracy);
    }

    /// <summary>kd eval-classifier's counting: its t = 0 accuracy is the argmax agreement computed independently from the
    /// feature extractor's softmax; the same seed gives the same figures; heavy noise drives a clean-trained net towards
    /// chance.</summary>
    [Fact]
    public void NoisedAccuracyCountsWhatTheClassifierSays()
    {
        var set = FixtureTrainingTests.Fixture(4, 240, 60);
        var schedule = Diffusion.NoiseSchedule.Named("linear", 1000);
        var a = NoisedAccuracy.Measure(fx.Device, net, set, schedule, seed: 5, batch: 25);
        var b = NoisedAccuracy.Measure(fx.Device, net, set, schedule, seed: 5, batch: 60);
        var probs = Features(set.Pixels, set.Count).Probs;
        int right = Enumerable.Range(0, set.Count).Count(i =>
            Enumerable.Range(0, 10).MaxBy(k => probs[i * 10 + k]) == set.Labels[i]);
        log.WriteLine($"clean {a.Clean:P1}, quarters {string.Join(" ", a.Quarters.Select(q => q.ToString("P1")))}");
        Assert.Equal(right / (double)set.Count, a.Clean, 12);
        Assert.Equal(a.Quarters, b.Quarters);
        Assert.True(a.Clean > 0.3, $"clean accuracy {a.Clean:P1}: the test's classifier did not learn");
        Assert.True(a.Quarters[3] < a.Clean - 0.1, $"last quarter {a.Quarters[3]:P1} against clean {a.Clean:P1}: the images were not noised");
    }
}
