using KernelDiffusion.Autodiff;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Nn;
using KernelDiffusion.Training;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>Training on the committed fixture: the first 300 Fashion-MNIST training images, average-pooled 2x2 to
/// 14x14 so that a few dozen steps fit the suite's time on the CPU accelerator.</summary>
[Collection("device")]
public sealed class FixtureTrainingTests(DeviceFixture fx, ITestOutputHelper log)
{
    static ImageDataSet Fixture()
    {
        var full = Idx.Read(Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-images-idx3-ubyte.gz"),
            Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-labels-idx1-ubyte.gz"), DataSources.FashionMnistClasses, "fixture");
        var pooled = new float[full.Count * 196];
        for (int i = 0; i < full.Count; i++)
            for (int r = 0; r < 14; r++)
                for (int c = 0; c < 14; c++)
                {
                    int o = i * 784 + 2 * r * 28 + 2 * c;
                    pooled[i * 196 + r * 14 + c] = (full.Pixels[o] + full.Pixels[o + 1] + full.Pixels[o + 28] + full.Pixels[o + 29]) / 4;
                }
        return new ImageDataSet { Source = "fixture 14x14", Count = full.Count, Channels = 1, Height = 14, Width = 14, Pixels = pooled, Labels = full.Labels, ClassNames = full.ClassNames };
    }

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
        using var t = new Trainer(fx.Device, model, Fixture(), new TrainOptions { Batch = 8, Lr = 2e-3, Seed = 1, EmaRates = [0.9] });
        var losses = Enumerable.Range(0, 30).Select(_ => t.TrainStep().Loss).ToList();
        double first = losses.Take(5).Average(), last = losses.Skip(25).Average();
        log.WriteLine($"eps-MSE: first 5 steps {first:F4}, last 5 {last:F4}");
        Assert.True(last < 0.5 * first, $"loss {first:F4} -> {last:F4}");
    }

    [Fact]
    public void TheNoiseAwareClassifierBeatsChanceOnNoisedImages()
    {
        var c = TinyUnet with { Model = "classifier", OutChannels = 10, NumClasses = 0, Pool = "adaptive" };
        var data = Fixture();
        using var model = new Classifier(fx.Device, c);
        model.Initialize(2);
        using var t = new Trainer(fx.Device, model, data, new TrainOptions { Kind = "classifier", Batch = 16, Lr = 2e-3, Seed = 2, EmaRates = [0.9], ClipNorm = 0 });
        for (int i = 0; i < 60; i++) t.TrainStep();

        // Accuracy on 100 images noised to t = 100 of the linear schedule (abar about 0.87).
        var s = NoiseSchedule.Named("linear", 1000);
        var d = fx.Device;
        var pixels = data.Pixels[..(100 * 196)];
        var rng = new Random(9);
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = (float)(s.SqrtAlphasCumprod[100] * pixels[i] + s.SqrtOneMinusAlphasCumprod[100] * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        using var x = d.FromArray(pixels, [100, 1, 14, 14], "x_t");
        using var tt = d.FromArray(Enumerable.Repeat(100f, 100).ToArray(), [100], "t");
        float[] logits;
        using (d.Tape.NoGrad()) logits = model.Forward(x, tt).ToArray();
        d.Tape.Reset();
        int correct = Enumerable.Range(0, 100).Count(i => Enumerable.Range(0, 10).MaxBy(k => logits[i * 10 + k]) == data.Labels[i]);
        log.WriteLine($"accuracy at t = 100 after 60 steps: {correct}%");
        Assert.True(correct >= 30, $"accuracy {correct}% (chance 10%)");
    }
}
