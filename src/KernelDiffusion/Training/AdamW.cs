using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>AdamW as torch.optim.AdamW computes it (bias correction, decoupled weight decay), one fused kernel per
/// parameter tensor. Moments are allocated once, at construction.</summary>
public sealed class AdamW : IDisposable
{
    readonly List<(Tensor P, Tensor M, Tensor V)> state = [];

    public double LearningRate { get; set; }
    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.999;
    public double Eps { get; set; } = 1e-8;
    public double WeightDecay { get; set; }

    /// <summary>Steps taken so far (t of the bias corrections); set when resuming.</summary>
    public long StepCount { get; set; }

    /// <summary>Each parameter with its first and second moments (for checkpoints).</summary>
    public IReadOnlyList<(Tensor P, Tensor M, Tensor V)> State => state;

    public AdamW(IEnumerable<Tensor> parameters, double learningRate, double weightDecay = 0.0)
    {
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        foreach (var p in parameters)
        {
            if (!p.IsPersistent || !p.RequiresGrad)
                throw new KdException($"adamw: '{p.Name}' is not a parameter (want a persistent tensor with RequiresGrad)");
            state.Add((p, p.Device.Zeros(p.Shape, p.Name + ".adam_m"), p.Device.Zeros(p.Shape, p.Name + ".adam_v")));
        }
    }

    /// <summary>One update from the accumulated gradients; throws, changing nothing, when a gradient is missing.</summary>
    public void Step()
    {
        foreach (var (p, _, _) in state)
            if (p.Grad == null) throw new KdException($"adamw: parameter '{p.Name}' has no gradient (run Backward first)");
        StepCount++;
        var s = AdamStep.Create(LearningRate, Beta1, Beta2, Eps, WeightDecay, StepCount);
        foreach (var (p, m, v) in state)
            Adam.AdamW(p.Device.Accelerator, p.View, p.Grad!.View, m.View, v.View, s, p.Length);
    }

    public void ZeroGrad()
    {
        foreach (var (p, _, _) in state) p.ZeroGrad();
    }

    public void Dispose()
    {
        foreach (var (_, m, v) in state)
        {
            m.Dispose();
            v.Dispose();
        }
    }
}
