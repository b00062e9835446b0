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
        using var t = new Trainer(fx.Device, model, Fixture(), new TrainOptions { Batch = 4, Lr = 2e-3, Seed = 1, EmaRates = [0.9] });
        var losses = Enumerable.Range(0, 24).Select(_ => t.TrainStep().Loss).ToList();
        double first = losses.Take(4).Average(), last = losses.Skip(20).Average();
        log.WriteLine($"eps-MSE: first 4 steps {first:F4}, last 4 {last:F4}");
        Assert.True(last < 0.6 * first, $"loss {first:F4} -> {last:F4}");
    }
}
