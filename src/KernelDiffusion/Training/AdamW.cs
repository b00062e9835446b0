using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>AdamW as torch.optim.AdamW computes it (bias correction, decoupled weight decay). The constructor moves
/// the parameters into one arena (back to back, in the given order) and reserves their gradients in a second one, so
/// <see cref="Step"/> is one fused kernel over all parameters and <see cref="ZeroGrad"/> one fill; the kernel is
/// elementwise, so this gives bit for bit what one launch per tensor gave. The moments are two flat buffers,
/// allocated once; <see cref="State"/> shows them per parameter. The model keeps owning its parameters: the
/// arenas' memory goes back to the pool when the model disposes them.</summary>
public sealed class AdamW : IDisposable
{
    readonly List<Tensor> parameters;
    readonly Tensor grads;
    readonly Tensor m, v;
    readonly List<(Tensor P, Tensor M, Tensor V)> state = [];

    public double LearningRate { get; set; }
    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.999;
    public double Eps { get; set; } = 1e-8;
    public double WeightDecay { get; set; }

    /// <summary>Steps taken so far (t of the bias corrections); set when resuming.</summary>
    public long StepCount { get; set; }

    /// <summary>Each parameter with its first and second moments: slices of the flat moment buffers (for checkpoints).</summary>
    public IReadOnlyList<(Tensor P, Tensor M, Tensor V)> State => state;

    public AdamW(IEnumerable<Tensor> parameters, double learningRate, double weightDecay = 0.0)
    {
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        this.parameters = parameters.ToList();
        if (this.parameters.Count == 0) throw new KdException("adamw: no parameters to optimise");
        foreach (var p in this.parameters)
        {
            if (!p.IsPersistent || !p.RequiresGrad)
                throw new KdException($"adamw: '{p.Name}' is not a parameter (want a persistent tensor with RequiresGrad)");
            _ = p.View;   // a disposed parameter throws here, named, before any arena is allocated
        }
        if (this.parameters.Distinct(ReferenceEqualityComparer.Instance).Count() != this.parameters.Count)
            throw new KdException("adamw: a parameter is listed twice");
        var d = this.parameters[0].Device;
        long total = this.parameters.Sum(p => (long)p.Length);
        var values = Tensor.Arena(d, total, "adamw.parameters");
        grads = Tensor.Arena(d, total, "adamw.gradients");
        m = Tensor.Arena(d, total, "adamw.m");
        v = Tensor.Arena(d, total, "adamw.v");
        m.Fill(0);
        v.Fill(0);
        int offset = 0;
        foreach (var p in this.parameters)
        {
            p.MoveInto(values, offset);
            p.PlaceGradIn(grads, offset);
            state.Add((p, m.Slice(offset, p.Shape, p.Name + ".adam_m"), v.Slice(offset, p.Shape, p.Name + ".adam_v")));
            offset += p.Length;
        }
    }

    /// <summary>One update from the accumulated gradients; throws, changing nothing, when a gradient is missing.</summary>
    public void Step()
    {
        foreach (var p in parameters)
            if (p.Grad == null) throw new KdException($"adamw: parameter '{p.Name}' has no gradient (run Backward first)");
        var (pv, gv) = (Tensor.Span(parameters), Tensor.Span(parameters.Select(p => p.Grad!).ToList()));
        if (pv == null || gv == null) throw NotInArena();
        StepCount++;
        var s = AdamStep.Create(LearningRate, Beta1, Beta2, Eps, WeightDecay, StepCount);
        Adam.AdamW(m.Device.Accelerator, pv.Value, gv.Value, m.View, v.View, s, m.Length);
    }

    /// <summary>Every parameter's gradient, back to back in the parameters' order (zeros where Backward gave a parameter
    /// none since ZeroGrad): for one-launch work over all gradients (the global norm, clipping).</summary>
    public Tensor Gradients => grads;

    /// <summary>Zeros every gradient: one fill over the gradient arena.</summary>
    public void ZeroGrad()
    {
        grads.Fill(0);
        foreach (var p in parameters) p.GradIsClear = true;
    }

    /// <summary>Something moved the parameters after construction (another AdamW over the same tensors) or disposed
    /// one: a launch over the arena would miss them.</summary>
    Exception NotInArena()
    {
        foreach (var p in parameters) _ = p.View;   // a disposed parameter throws, named
        return new KdException("adamw: the parameters or their gradients no longer lie in this optimiser's arena " +
                               "(was another AdamW built over the same parameters?)");
    }

    public void Dispose()
    {
        foreach (var (_, sm, sv) in state)
        {
            sm.Dispose();
            sv.Dispose();
        }
    }
}
