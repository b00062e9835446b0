using KernelDiffusion.Data;
using KernelDiffusion.Nn;
using KernelDiffusion.Training;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>Training on the committed fixture: the first 300 Fashion-MNIST training images, average-pooled 2x2 to
/// 14x14 so that a few dozen steps fit the suite's time on the CPU accelerator.</summary>
[Collection("device")]
public sealed class FixtureTrainingTests(DeviceFixture fx, ITestOutputHelper log)
{
    /// <summary>Images first..first+count of the fixture, average-pooled f x f.</summary>
    internal static ImageDataSet Fixture(int f = 2, int first = 0, int count = 300)
        => Idx.Read(Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-images-idx3-ubyte.gz"),
            Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-labels-idx1-ubyte.gz"), DataSources.FashionMnistClasses, "fixture")
            .Range(first, count).Downsample(f);

    static readonly ModelConfig TinyUnet = new()
    {
        ImageSize = 14, InChannels = 1, ModelChannels = 32, OutChannels = 1, NumResBlocks = 1, AttentionResolutions = [2],
        ChannelMult = [1, 2], NumClasses = 11, NumHeadChannels = 32, UseScaleShiftNorm = true, ResblockUpdown = true,
    };

    [Fact]
    public void ATinyUnetsLossFallsOnFashionMnist()
    {
        using var model = new UNet(fx.Device, TinyUnet);
        model.Initialize(1);
        using var t = new Trainer(fx.Device, model, Fixture(), new TrainOptions { Batch = 4, Lr = 2e-3, Seed = 1, EmaRates = [0.9] });
        var losses = Enumerable.Range(0, 24).Select(_ => t.TrainStep().Loss).ToList();
        double first = losses.Take(4).Average(), last = losses.Skip(20).Average();
        log.WriteLine($"eps-MSE: first 4 steps {first:F4}, last 4 {last:F4}");
        Assert.True(last < 0.6 * first, $"loss {first:F4} -> {last:F4}");
    }

    [Fact]
    public void ANoiseAwareClassifierBeatsChanceOnNoisedHeldOutImages()
    {
        // Trained on 240 fixture images pooled to 7x7 at uniformly drawn t, then asked for the class of the 60 images it
        // never saw, noised at t = 0, 100, 200 (the first quarter of the schedule) with fresh noise. Chance is 10%;
        // 180 trials put 25% (chance + 5 binomial standard errors) far out of luck's reach.
        var d = fx.Device;
        var config = new ModelConfig
        {
            Model = "classifier", ImageSize = 7, InChannels = 1, ModelChannels = 32, OutChannels = 10, NumResBlocks = 1, ChannelMult = [1],
            NumHeadChannels = 32, UseScaleShiftNorm = true, Pool = "attention",
        };
        using var model = new Classifier(d, config);
        model.Initialize(2);
        var options = new TrainOptions { Kind = "classifier", Batch = 16, Lr = 3e-3, Seed = 3, EmaRates = [0.9] };
        using var t = new Trainer(d, model, Fixture(4, 0, 240), options);
        var steps = Enumerable.Range(0, 200).Select(_ => t.TrainStep()).ToList();
        log.WriteLine($"loss: first 10 steps {steps.Take(10).Average(s => s.Loss):F3}, last 10 {steps.Skip(190).Average(s => s.Loss):F3}");

        var test = Fixture(4, 240, 60);
        var schedule = Diffusion.NoiseSchedule.Named("linear", 1000);
        var rng = new Random(5);
        int right = 0, trials = 0;
        foreach (int step in new[] { 0, 100, 200 })
        {
            double a = schedule.SqrtAlphasCumprod[step], b = schedule.SqrtOneMinusAlphasCumprod[step];
            var noised = test.Pixels.Select(v => (float)(a * v + b * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()))).ToArray();
            using var x = d.FromArray(noised, [test.Count, 1, 7, 7], "x_t");
            using var tt = d.FromArray(Enumerable.Repeat((float)step, test.Count).ToArray(), [test.Count], "t");
            float[] logits;
            using (d.Tape.NoGrad()) logits = model.Forward(x, tt).ToArray();
            d.Tape.Reset();
            for (int i = 0; i < test.Count; i++, trials++)
                if (Enumerable.Range(0, 10).MaxBy(k => logits[i * 10 + k]) == test.Labels[i]) right++;
        }
        double accuracy = right / (double)trials;
        log.WriteLine($"held-out accuracy at t = 0, 100, 200: {accuracy:P1} ({right}/{trials})");
        Assert.True(accuracy > 0.25, $"held-out accuracy {accuracy:P1} does not beat chance (10%) clearly");
    }
}
