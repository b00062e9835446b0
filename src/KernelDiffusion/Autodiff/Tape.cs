using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

/// <summary>Reverse-mode tape. Every op that sees an input with RequiresGrad (outside a NoGrad scope) records a
/// node: its output and a closure that, given the output's gradient, accumulates gradients into its inputs.
/// The tape also owns every op output (temporaries): <see cref="Reset"/> returns them to the pool.</summary>
public sealed class Tape(ComputeDevice device)
{
    /// <summary>A recorded op: its output, its backward, and the shapes its profile mark named (its backward's mark names
    /// them too).</summary>
    sealed record Node(string Op, Tensor Output, Action<Tensor> Backward, string? Shapes);

    readonly List<Node> nodes = [];
    readonly List<Tensor> temporaries = [];
    int noGradDepth;

    public bool GradEnabled => noGradDepth == 0;
    public int NodeCount => nodes.Count;
    public int TemporaryCount => temporaries.Count;

    /// <summary>A scope in which ops record nothing (sampling, evaluation).</summary>
    public IDisposable NoGrad()
    {
        noGradDepth++;
        return new Scope(() => noGradDepth--);
    }

    sealed class Scope(Action exit) : IDisposable
    {
        bool done;
        public void Dispose() { if (!done) { done = true; exit(); } }
    }

    internal void Own(Tensor t) => temporaries.Add(t);

    internal bool ShouldRecord(params Tensor[] inputs) => GradEnabled && inputs.Any(t => t.RequiresGrad);

    internal void Record(string op, Tensor output, Action<Tensor> backward)
    {
        output.RequiresGrad = true;
        nodes.Add(new Node(op, output, backward, device.Profiler?.CurrentShapes));
    }

    /// <summary>Back-propagates from a scalar (backward closures run under NoGrad, so they may call any op): gradients accumulate (+=) into every tensor with RequiresGrad that
    /// contributed, so several Backward calls before ZeroGrad sum their gradients. Consumes the recorded graph.</summary>
    public void Backward(Tensor loss)
    {
        if (loss.Length != 1)
            throw new KdException($"backward: loss '{loss.Name}' {loss.ShapeText} is not a scalar (reduce it with Sum or Mean first)");
        if (!loss.RequiresGrad || !nodes.Any(n => n.Output == loss))
            throw new KdException($"backward: loss '{loss.Name}' has no recorded graph (nothing with RequiresGrad fed it, " +
                                  "it was computed under NoGrad, or an earlier Backward consumed its graph)");
        var seed = device.Temporary([1], "grad_seed");
        seed.Fill(1);
        Accumulate(loss, seed, owned: true);
        Propagate();
    }

    /// <summary>Back-propagates the vector-Jacobian product of <paramref name="output"/> with <paramref name="grad"/>
    /// (its shape): what Backward(sum(output * grad)) gives, without the two extra kernels (for benchmarks of one op).</summary>
    public void Backward(Tensor output, Tensor grad)
    {
        if (!grad.Shape.SequenceEqual(output.Shape))
            throw new KdException($"backward: gradient '{grad.Name}' {grad.ShapeText} does not match output '{output.Name}' {output.ShapeText}");
        if (!output.RequiresGrad || !nodes.Any(n => n.Output == output))
            throw new KdException($"backward: '{output.Name}' has no recorded graph");
        // Lent, not copied: no backward writes into its output's gradient, and a tensor the tape does not own is never
        // handed on (Accumulate copies it), so the caller's grad is only read.
        if (output.Grad == null && !output.IsPersistent && !OwnedByTape(grad)) output.Grad = grad;
        else Accumulate(output, grad, owned: false);
        Propagate();
    }

    /// <summary>Whether g's memory is a temporary of the tape's (a reshape of one included), which a gradient may adopt.</summary>
    static bool OwnedByTape(Tensor g)
    {
        while (g.ReshapeSource is { } source) g = source;
        return !g.IsPersistent;
    }

    /// <summary>Runs each recorded node's backward once, newest first. An op output's gradient is complete when its
    /// node runs and is read by nothing after it, so a backward may hand it on to an input unchanged (owned), without
    /// a copy: read an intermediate tensor's Grad only before Backward returns, if at all.</summary>
    void Propagate()
    {
        using (NoGrad())
        {
            for (int i = nodes.Count - 1; i >= 0; i--)
            {
                var n = nodes[i];
                if (n.Output.Grad == null) continue;
                device.Profiler?.Mark(device, n.Op + "_grad", shapes: n.Shapes);
                n.Backward(n.Output.Grad);
            }
        }
        nodes.Clear();
    }

    /// <summary>Adds <paramref name="g"/> into target.Grad. An <paramref name="owned"/> temporary that no one else
    /// holds is adopted without a copy; otherwise g is copied (into a new gradient, or a persistent one nothing has
    /// reached since ZeroGrad) or added in place.</summary>
    internal void Accumulate(Tensor target, Tensor g, bool owned)
    {
        if (!target.RequiresGrad) return;
        if (g.Length != target.Length)
            throw new InvalidOperationException($"backward: a gradient {g.ShapeText} reached '{target.Name}' {target.ShapeText} (an op's backward is wrong)");
        bool clear = target.GradIsClear && target.IsPersistent;
        target.GradIsClear = false;
        if (target.Grad == null)
        {
            if (owned && !target.IsPersistent && OwnedByTape(g))
            {
                target.Grad = g.Shape.SequenceEqual(target.Shape) ? g : Ops.Reshape(g, target.Shape);
                return;
            }
            target.Grad = target.IsPersistent ? target.NewGrad() : device.Temporary(target.Shape, target.Name + ".grad");
            clear = true;
        }
        if (clear)
        {
            target.Grad.CopyFrom(g);   // nothing to add to
            return;
        }
        Kernels.Elementwise.Binary(device.Accelerator, Kernels.BinaryOp.Add, target.Grad.View, g.View, target.Grad.View,
            Kernels.Broadcast4.Create([target.Length], [target.Length], [target.Length]), target.Length);
    }

    /// <summary>The buffer a backward may write <paramref name="target"/>'s gradient into, over what it holds: the
    /// persistent gradient of target (or of the tensor target is a reshape of) while nothing has reached it since
    /// ZeroGrad, shaped as target. Null otherwise: then write a temporary and Accumulate it. For parameters this saves
    /// an add (a launch and two passes over the gradient) per parameter and step. Whatever the view's own gradient
    /// collects later still reaches the source through the reshape's backward.</summary>
    internal Tensor? ClearGrad(Tensor target)
    {
        if (!target.RequiresGrad) return null;
        var root = target;
        while (root.ReshapeSource is { } source) root = source;
        if (!root.IsPersistent || !root.RequiresGrad || !root.GradIsClear) return null;
        root.Grad ??= root.NewGrad();
        root.GradIsClear = false;
        if (root == target) return root.Grad;
        var view = root.Grad.ViewAs(target.Shape, target.Name + ".grad");
        Own(view);
        return view;
    }

    /// <summary>Forgets the graph and returns every op output (and its gradient) to the pool. Persistent tensors
    /// keep their gradients.</summary>
    public void Reset()
    {
        nodes.Clear();
        foreach (var t in temporaries) t.Release();
        temporaries.Clear();
    }
}
