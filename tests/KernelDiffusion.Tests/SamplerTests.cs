using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Kernels;
using KernelDiffusion.Nn;
using SixLabors.ImageSharp;

namespace KernelDiffusion.Tests;

[Collection("device")]
public sealed class SamplerTests(DeviceFixture fx)
{
    [Fact]
    public void DdimWithAZeroEpsilonModelFollowsTheClosedForm()
    {
        // A freshly initialised UNet's output conv is zero, so eps = 0 exactly: x0 = clip(x / sqrt(abar)) and
        // x_prev = sqrt(abar_prev) x0, from the same Philox noise, in float64.
        var c = new ModelConfig
        {
            ImageSize = 8, InChannels = 1, ModelChannels = 32, OutChannels = 1, NumResBlocks = 1, ChannelMult = [1, 2],
            NumClasses = 4, NumHeadChannels = 32, UseScaleShiftNorm = true,
        };
        using var model = new UNet(fx.Device, c);
        model.Initialize(3);
        var s = NoiseSchedule.Named("linear", 100);
        var got = DdimSampler.Sample(fx.Device, model, s, [0, 1, 2], 3, steps: 5, guidance: 2f, seed: 7);
        var x = Philox.Reference.Draw(3 * 64, 7, 0, normal: true);
        var ts = DdimSampler.Timesteps(100, 5);
        Assert.Equal([99, 74, 50, 25, 0], ts);
        for (int i = 0; i < ts.Length; i++)
        {
            double ab = s.AlphasCumprod[ts[i]], abPrev = i + 1 < ts.Length ? s.AlphasCumprod[ts[i + 1]] : 1;
            x = x.Select(v => Math.Sqrt(abPrev) * Math.Clamp(v / Math.Sqrt(ab), -1, 1)).ToArray();
        }
        Assert.True(KernelDiffusion.Checks.KernelChecks.RelError(got, x) < 1e-5);
        fx.Device.Tape.Reset();
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
}
