using KernelDiffusion.Autodiff;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

/// <summary>A whole model against a float64 replay of the graph it ran (<see cref="ReferenceGraph"/>): the forward
/// output, and the tape's gradients of sum(out * g) with respect to x and to parameters of every kind (2 elements
/// of every stride-th parameter tensor and of the last) against central differences of the replay. Weights are
/// random everywhere, the reference's zero-initialised output layers included.</summary>
public static class ModelChecks
{
    /// <param name="WorstOp">The op whose device output is furthest from its own float64 reference on the same inputs
    /// (where a mismatch starts), with that relative error.</param>
    public sealed record Result(double ForwardError, double GradientError, int Ops, int Sampled, double Seconds, string WorstOp);

    public static Result Run(ComputeDevice d, ModelConfig c, int batch = 2, int xSamples = 6, int parameterStride = 10, int seed = 1)
    {
        var started = DateTime.UtcNow;
        var rng = new Random(seed);
        float[] Randn(int n) => KernelChecks.Randn(rng, n).Select(v => (float)v).ToArray();
        using DiffusionTrunk model = c.IsClassifier ? new Classifier(d, c) : new UNet(d, c);
        model.Initialize((ulong)seed, randomizeConstants: true);
        var graph = new ReferenceGraph();
        d.Reference = graph;
        try
        {
            int s = c.ImageSize;
            using var x = d.FromArray(Randn(batch * c.InChannels * s * s), [batch, c.InChannels, s, s], "x");
            x.RequiresGrad = true;
            using var t = d.FromArray(Enumerable.Range(0, batch).Select(_ => (float)rng.Next(1000)).ToArray(), [batch], "t");
            using var y = !c.IsClassifier && c.NumClasses > 0 ? d.Labels(Enumerable.Range(0, batch).Select(_ => rng.Next(c.NumClasses)).ToArray(), c.NumClasses) : null;
            var output = model is UNet u ? u.Forward(x, t, y) : ((Classifier)model).Forward(x, t);
            var g = Randn(output.Length);
            using var gt = d.FromArray(g, output.Shape, "g");
            d.Tape.Backward(Ops.Sum(Ops.Mul(output, gt)));

            double forward = KernelChecks.RelError(output.ToArray(), graph.Evaluate()[output]);
            var (op, name, opError) = graph.WorstOp(output);
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
            Sample(x, xSamples);
            var ps = model.NamedParameters().ToList();
            for (int i = 0; i < ps.Count; i += parameterStride) Sample(ps[i].Param, 2);
            Sample(ps[^1].Param, 2);
            return new Result(forward, KernelChecks.RelError(got.ToArray(), fd.ToArray()), graph.Count, got.Count, (DateTime.UtcNow - started).TotalSeconds,
                $"{op} -> {name}: {opError:E2}");
        }
        finally
        {
            d.Reference = null;
            d.Tape.Reset();
        }
    }
}
