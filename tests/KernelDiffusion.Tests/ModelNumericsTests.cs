using KernelDiffusion.Autodiff;
using KernelDiffusion.Checks;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
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

    public static TheoryData<string> Models() => new(["unet", "unet.legacy_plain", "classifier.attention", "classifier.adaptive"]);

    static ModelConfig ConfigFor(string name) => name switch
    {
        "unet" => TinyUnet,
        "unet.legacy_plain" => TinyUnet with { UseScaleShiftNorm = false, ResblockUpdown = false, UseNewAttentionOrder = false, NumClasses = 0 },
        "classifier.attention" => TinyUnet with { Model = "classifier", OutChannels = 5, NumClasses = 0, Pool = "attention" },
        _ => TinyUnet with { Model = "classifier", OutChannels = 5, NumClasses = 0, Pool = "adaptive", UseNewAttentionOrder = false },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void ForwardAndGradientsMatchAFloat64ReplayOfTheGraph(string name)
    {
        var d = fx.Device;
        var c = ConfigFor(name);
        var rng = new Random(name.Length);
        float[] Randn(int n) => Enumerable.Range(0, n).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()))).ToArray();
        using Module model = c.IsClassifier ? new Classifier(d, c) : new UNet(d, c);
        model.Initialize(17, randomizeConstants: true);
        var graph = new ReferenceGraph();
        d.Reference = graph;
        try
        {
            using var x = d.FromArray(Randn(2 * 2 * 8 * 8), [2, 2, 8, 8], "x");
            x.RequiresGrad = true;
            using var t = d.FromArray([3.5f, 917f], [2], "t");
            using var y = c.NumClasses > 0 ? d.Labels([0, 2], c.NumClasses) : null;
            var output = model is UNet u ? u.Forward(x, t, y) : ((Classifier)model).Forward(x, t);
            var g = Randn(output.Length);
            using var gt = d.FromArray(g, output.Shape, "g");
            d.Tape.Backward(Ops.Sum(Ops.Mul(output, gt)));

            var replay = graph.Evaluate();
            double forward = KernelChecks.RelError(output.ToArray(), replay[output]);

            // Gradients at sampled coordinates: some of x, and two of every tenth parameter tensor (all kinds appear).
            var weights = g.Select(v => (double)v).ToArray();
            var got = new List<float>();
            var fd = new List<double>();
            void Sample(Tensor leaf, int count)
            {
                var grad = leaf.Grad!.ToArray();
                for (int k = 0; k < count; k++)
                {
                    int i = rng.Next(leaf.Length);
                    got.Add(grad[i]);
                    fd.Add(graph.FiniteDifference(output, weights, leaf, i));
                }
            }
            Sample(x, 6);
            var ps = model.NamedParameters().ToList();
            for (int i = 0; i < ps.Count; i += 10) Sample(ps[i].Param, 2);
            Sample(ps[^1].Param, 2);
            double backward = KernelChecks.RelError(got.ToArray(), fd.ToArray());
            log.WriteLine($"{name}: {graph.Count} ops replayed; forward rel. error {forward:E2}; gradients ({got.Count} sampled) rel. error {backward:E2}");
            Assert.True(forward < 1e-5, $"forward relative error {forward:E2}");
            Assert.True(backward < 1e-4, $"gradient relative error {backward:E2}");
        }
        finally
        {
            d.Reference = null;
            d.Tape.Reset();
        }
    }
}
