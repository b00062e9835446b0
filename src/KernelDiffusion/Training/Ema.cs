using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>Exponential moving average of weights: ema = rate * ema + (1 - rate) * p after each step (with a warm-up
/// of the rate when the step is given). The averages live in one flat buffer, in the parameters' order; when the
/// parameters lie back to back in one arena (as AdamW places them), an update is one kernel launch over all of them,
/// otherwise one per tensor (same values: the kernel is elementwise).</summary>
public sealed class Ema : IDisposable
{
    readonly List<(Tensor P, Tensor Shadow)> pairs = [];
    readonly List<Tensor> parameters;
    readonly Tensor shadows;

    public double Rate { get; }

    public Ema(IEnumerable<Tensor> parameters, double rate = 0.9999)
    {
        if (rate is < 0 or > 1) throw new KdException($"ema: rate {rate} is outside [0, 1]");
        Rate = rate;
        this.parameters = parameters.ToList();
        if (this.parameters.Count == 0) throw new KdException("ema: no parameters to average");
        shadows = Tensor.Arena(this.parameters[0].Device, this.parameters.Sum(p => (long)p.Length), $"ema{rate}");
        int offset = 0;
        foreach (var p in this.parameters)
        {
            var shadow = shadows.Slice(offset, p.Shape, $"{p.Name}.ema{rate}");
            shadow.CopyFrom(p);
            pairs.Add((p, shadow));
            offset += p.Length;
        }
    }

    /// <summary>Each parameter's average: a slice of the flat buffer.</summary>
    public IReadOnlyList<Tensor> Shadows => pairs.Select(x => x.Shadow).ToList();

    /// <summary>Each parameter with its average (for checkpoints).</summary>
    public IReadOnlyList<(Tensor P, Tensor Shadow)> Pairs => pairs;

    public void Update() => Update(Rate);

    /// <summary>The update after optimiser step <paramref name="step"/> (0-based) with a warm-up: the rate is
    /// min(Rate, (1 + step) / (10 + step)), so that a short run's average is not dominated by the initial weights
    /// (0.9999^1000 still leaves 90% of them; diffusers' EMAModel warms up the same way).</summary>
    public void Update(long step) => Update(Math.Min(Rate, (1.0 + step) / (10.0 + step)));

    void Update(double rate)
    {
        var acc = shadows.Device.Accelerator;
        if (Tensor.Span(parameters) is { } all)
            Adam.Ema(acc, shadows.View, all, (float)rate, shadows.Length);
        else
            foreach (var (p, s) in pairs) Adam.Ema(acc, s.View, p.View, (float)rate, p.Length);
    }

    public void Dispose()
    {
        foreach (var (_, s) in pairs) s.Dispose();
    }
}
