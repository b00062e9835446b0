using System.Diagnostics;
using System.Text;

namespace KernelDiffusion.Runtime;

/// <summary>Time per op name, for finding where a step goes. When attached to a device, every op output
/// synchronises the device and charges the time since the previous op output to that previous op (its kernels plus
/// its host work), so the figures are approximate and the run is slower; never leave it on for speed measurements.</summary>
public sealed class OpProfiler
{
    readonly Dictionary<string, (long Count, double Ms)> ops = [];
    readonly Stopwatch clock = new();
    string? current;

    internal void Mark(ComputeDevice d, string op)
    {
        d.Synchronize();
        Close();
        current = op;
        clock.Restart();
    }

    /// <summary>Charges the running op; call after the last op of what is measured (after a synchronise).</summary>
    public void Close()
    {
        if (current == null) return;
        var (n, ms) = ops.GetValueOrDefault(current);
        ops[current] = (n + 1, ms + clock.Elapsed.TotalMilliseconds);
        current = null;
    }

    public IReadOnlyDictionary<string, (long Count, double Ms)> Totals => ops;

    public string Report(int top = 20)
    {
        double total = ops.Values.Sum(v => v.Ms);
        var sb = new StringBuilder($"{"op",-32} {"calls",8} {"ms",10} {"share",7}\n");
        foreach (var (name, (n, ms)) in ops.OrderByDescending(kv => kv.Value.Ms).Take(top))
            sb.AppendLine($"{name,-32} {n,8} {ms,10:F1} {ms / Math.Max(total, 1e-9),7:P1}");
        return sb.Append($"{"total",-32} {ops.Values.Sum(v => v.Count),8} {total,10:F1}").ToString();
    }
}
