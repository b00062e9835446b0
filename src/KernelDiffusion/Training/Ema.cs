using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>Exponential moving average of weights: ema = rate * ema + (1 - rate) * p after each step (with a warm-up
/// of the rate when the step is given).</summary>
public sealed class Ema : IDisposable
{
    readonly List<(Tensor P, Tensor Shadow)> pairs = [];

    public double Rate { get; }

    public Ema(IEnumerable<Tensor> parameters, double rate = 0.9999)
    {
        if (rate is < 0 or > 1) throw new KdException($"ema: rate {rate} is outside [0, 1]");
        Rate = rate;
        foreach (var p in parameters)
        {
            var shadow = p.Device.Empty(p.Shape, $"{p.Name}.ema{rate}");
            shadow.CopyFrom(p);
            pairs.Add((p, shadow));
        }
    }

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
        foreach (var (p, s) in pairs) Adam.Ema(p.Device.Accelerator, s.View, p.View, (float)rate, p.Length);
    }

    public void Dispose()
    {
        foreach (var (_, s) in pairs) s.Dispose();
    }
}
