using KernelDiffusion.Checks;
using KernelDiffusion.Nn;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>Whole models against a float64 replay of the same graph (<see cref="ReferenceGraph"/>): the forward output,
/// and the tape's gradients of sum(out * g) with respect to the input and to parameters of every kind against
/// central differences of the replay. Random weights everywhere, zero-initialised output layers included.</summary>
[Collection("device")]
public sealed class ModelNumericsTests(DeviceFixture fx, ITestOutputHelper log)
{
    static readonly ModelConfig TinyUnet = new()
    {
        ImageSize = 8, InChannels = 2, ModelChannels = 32, OutChannels = 4, NumResBlocks = 1, AttentionResolutions = [2],
        ChannelMult = [1, 2], NumClasses = 3, NumHeadChannels = 32, UseScaleShiftNorm = true, ResblockUpdown = true,
        UseNewAttentionOrder = true,
    };

    public static TheoryData<string> Models() => new(["unet", "unet.legacy_plain", "classifier.attention", "classifier.adaptive", "classifier.one_head"]);

    static ModelConfig ConfigFor(string name) => name switch
    {
        "unet" => TinyUnet,
        "unet.legacy_plain" => TinyUnet with { UseScaleShiftNorm = false, ResblockUpdown = false, UseNewAttentionOrder = false, NumClasses = 0 },
        "classifier.attention" => TinyUnet with { Model = "classifier", OutChannels = 5, NumClasses = 0, Pool = "attention" },
        // 32 channels: one head in the attention block and in the pool (samples are then the GEMMs' only batch level).
        "classifier.one_head" => TinyUnet with { Model = "classifier", OutChannels = 5, NumClasses = 0, Pool = "attention", ChannelMult = [1], AttentionResolutions = [1] },
        _ => TinyUnet with { Model = "classifier", OutChannels = 5, NumClasses = 0, Pool = "adaptive", UseNewAttentionOrder = false },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void ForwardAndGradientsMatchAFloat64ReplayOfTheGraph(string name)
    {
        var r = ModelChecks.Run(fx.Device, ConfigFor(name));
        log.WriteLine($"{name}: {r.Ops} ops replayed; forward rel. error {r.ForwardError:E2}; gradients ({r.Sampled} sampled) rel. error {r.GradientError:E2}; worst op {r.WorstOp}");
        Assert.True(r.ForwardError < 1e-5, $"forward relative error {r.ForwardError:E2}");
        Assert.True(r.GradientError < 1e-4, $"gradient relative error {r.GradientError:E2}");
    }
}
