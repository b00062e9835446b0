using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

/// <summary>While attached to a device (<see cref="ComputeDevice.Reference"/>), every op also records its float64
/// reference, its inputs and its output; <see cref="Evaluate"/> then replays the very graph that ran, in float64,
/// from the leaves' values (tensors no recorded op produced: parameters, inputs, random draws). Finite differences
/// of a replay check any gradient of a whole model without a second implementation of it.</summary>
public sealed class ReferenceGraph
{
    sealed record Node(string Op, Tensor Output, Tensor[] Inputs, Func<double[][], double[]> Reference);

    readonly List<Node> nodes = [];
    readonly Dictionary<Tensor, double[]> leaves = new(ReferenceEqualityComparer.Instance);
    Dictionary<Tensor, double[]>? plain;

    public int Count => nodes.Count;

    internal void Add(string op, Tensor output, Tensor[] inputs, Func<double[][], double[]> reference)
    {
        nodes.Add(new Node(op, output, inputs, reference));
        plain = null;
    }

    /// <summary>The float64 value of every recorded tensor; <paramref name="overrides"/> replaces leaf values (to
    /// perturb one element for a finite difference). Leaves are read from the device once, on first use; with
    /// overrides, only the nodes downstream of an overridden leaf are recomputed, the rest come from the plain replay.</summary>
    public Dictionary<Tensor, double[]> Evaluate(IReadOnlyDictionary<Tensor, double[]>? overrides = null)
    {
        bool partial = overrides is { Count: > 0 };
        var baseline = partial ? (plain ??= Evaluate()) : null;
        var values = new Dictionary<Tensor, double[]>(ReferenceEqualityComparer.Instance);
        var changed = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        if (partial) changed.UnionWith(overrides!.Keys);
        double[] Value(Tensor t)
        {
            if (overrides != null && overrides.TryGetValue(t, out var o)) return o;
            return values.TryGetValue(t, out var v) ? v : LeafValue(t);
        }
        foreach (var n in nodes)
        {
            if (partial && !n.Inputs.Any(changed.Contains))
            {
                values[n.Output] = baseline![n.Output];
                continue;
            }
            var r = n.Reference(n.Inputs.Select(Value).ToArray());
            if (r.Length != n.Output.Length)
                throw new InvalidOperationException($"reference of {n.Op} gave {r.Length} values for {n.Output.ShapeText}");
            values[n.Output] = r;
            if (partial) changed.Add(n.Output);
        }
        return values;
    }

    /// <summary>Each op on its own: its float64 reference applied to the device's values of its inputs, against the
    /// device's output. The op with the largest relative error is where a whole-model mismatch starts (reads every
    /// recorded tensor from the device; call before the tape is reset). Only the ops up to the one that produced
    /// <paramref name="until"/>: a backward pass adds into gradients in place after recording them.</summary>
    public (string Op, string Output, double Error) WorstOp(Tensor until)
    {
        var worst = ("none", "", 0.0);
        foreach (var n in nodes.TakeWhile((_, i) => i == 0 || nodes[i - 1].Output != until))
        {
            var want = n.Reference(n.Inputs.Select(t => t.ToArray().Select(f => (double)f).ToArray()).ToArray());
            var got = n.Output.ToArray();
            double num = 0, den = 0;
            for (int i = 0; i < got.Length; i++)
            {
                num += (got[i] - want[i]) * (got[i] - want[i]);
                den += want[i] * want[i];
            }
            double err = Math.Sqrt(num / Math.Max(den, 1e-300));
            if (!(err <= worst.Item3)) worst = (n.Op, $"{n.Output.Name}{n.Output.ShapeText}", err);
        }
        return worst;
    }

    /// <summary>A leaf's value as float64, read from the device on first use.</summary>
    public double[] LeafValue(Tensor t)
    {
        if (!leaves.TryGetValue(t, out var leaf))
            leaves[t] = leaf = t.ToArray().Select(f => (double)f).ToArray();
        return leaf;
    }

    /// <summary>d sum(output * weights) / d leaf[index] by a central difference of two float64 replays.</summary>
    public double FiniteDifference(Tensor output, double[] weights, Tensor leaf, int index, double h = 1e-4)
    {
        var baseValue = LeafValue(leaf);
        if (plain != null && plain.ContainsKey(leaf)) throw new InvalidOperationException($"'{leaf.Name}' is an op's output, not a leaf");
        double At(double delta)
        {
            var v = (double[])baseValue.Clone();
            v[index] += delta;
            var y = Evaluate(new Dictionary<Tensor, double[]>(ReferenceEqualityComparer.Instance) { [leaf] = v })[output];
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += y[i] * weights[i];
            return s;
        }
        return (At(h) - At(-h)) / (2 * h);
    }
}
