using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>Exponential moving average of weights: ema = rate * ema + (1 - rate) * p after each step.</summary>
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

    public void Update()
    {
        foreach (var (p, s) in pairs) Adam.Ema(p.Device.Accelerator, s.View, p.View, (float)Rate, p.Length);
    }

    public void Dispose()
    {
        foreach (var (_, s) in pairs) s.Dispose();
    }
}
