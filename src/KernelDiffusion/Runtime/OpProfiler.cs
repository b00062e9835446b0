using System.Diagnostics;
using System.Text;

namespace KernelDiffusion.Runtime;

/// <summary>Time and launches per op name, for finding where a step goes. Every op's start (and every recorded node's
/// backward, as "op_grad") is a mark, and the time from one mark to the next is charged to the op marked first. Inside an
/// op, a named part (an output or gradient labelled otherwise, such as conv2d_weight_grad) takes the charge from there
/// on. The launches (kernels and device copies) are counted the same way: the fusion candidates.
/// <para>Two clocks. By default each mark synchronises the device and the host's clock times the op (its kernels plus
/// its host work), so the run is slower and every op pays a synchronisation; never leave it on for speed measurements.
/// With <see cref="StreamMarkers"/> (a GPU device opened with profiling: kd train --profile, kd sample), each mark is a
/// stream marker (a CUDA event) and nothing waits until <see cref="Close"/>: an op's time is the device's, between the
/// markers around its work, at the step's own pace. Where the device waits for the host, the wait goes to the op marked
/// before it. Every <paramref name="foldEvery"/> marks the device is waited for once and the intervals so far are
/// measured and their markers freed, so a long run does not hold a marker per op.</para></summary>
public sealed class OpProfiler(bool streamMarkers = false, int foldEvery = 4096)
{
    readonly Dictionary<string, (long Count, double Ms, long Launches)> ops = [];
    readonly Stopwatch clock = new();
    string? current;
    long launchesAtStart;

    /// <summary>Marks on the device's stream not yet measured: (op, marker, launches so far).</summary>
    readonly List<(string Op, ILGPU.Runtime.ProfilingMarker Marker, long Launches)> marks = [];
    ComputeDevice? device;

    /// <summary>Whether ops are timed between stream markers on the device's clock (see the class), not by the host.</summary>
    public bool StreamMarkers { get; } = streamMarkers;

    /// <summary>Charges what ran since the last mark and starts charging <paramref name="op"/>. A part
    /// (<paramref name="part"/>) under the name already charged continues that call instead of starting another.</summary>
    public void Mark(ComputeDevice d, string op, bool part = false)
    {
        if (part && op == current) return;
        if (StreamMarkers)
        {
            device = d;
            marks.Add((op, d.Accelerator.DefaultStream.AddProfilingMarker(), Kernels.KernelCache.Launches));
            current = op;
            if (marks.Count >= Math.Max(2, foldEvery)) Fold();
            return;
        }
        d.Synchronize();
        Close();
        current = op;
        launchesAtStart = Kernels.KernelCache.Launches;
        clock.Restart();
    }

    /// <summary>Set by <see cref="Restart"/>: the table leaves out what ran before (a first step, which compiles the kernels).</summary>
    public bool WarmUpLeftOut { get; private set; }

    /// <summary>Forgets what was measured so far, once the device has finished it: call after a warm-up (the first step
    /// compiles every kernel, and tunes with KD_KERNELS=auto) so the table shows the steps after it.</summary>
    public void Restart(ComputeDevice d)
    {
        d.Synchronize();
        DropMarks();
        ops.Clear();
        current = null;
        WarmUpLeftOut = true;
    }

    /// <summary>Charges the running op; call after the last op of what is measured (after a synchronise). With stream
    /// markers, a last marker ends it, and every interval between markers is measured now.</summary>
    public void Close()
    {
        if (StreamMarkers)
        {
            if (device != null && marks.Count > 0)
            {
                using var end = device.Accelerator.DefaultStream.AddProfilingMarker();
                end.Synchronize();
                Charge(marks.Count, end, Kernels.KernelCache.Launches);
            }
            DropMarks();
            current = null;
            return;
        }
        if (current == null) return;
        var (n, ms, launches) = ops.GetValueOrDefault(current);
        ops[current] = (n + 1, ms + clock.Elapsed.TotalMilliseconds, launches + Kernels.KernelCache.Launches - launchesAtStart);
        current = null;
    }

    /// <summary>Measures every mark's interval but the last's (the running op's: it has no end yet), which stays.</summary>
    void Fold()
    {
        var last = marks[^1];
        last.Marker.Synchronize();
        Charge(marks.Count - 1, last.Marker, last.Launches);
        marks.RemoveAt(marks.Count - 1);
        DropMarks();
        marks.Add(last);
    }

    /// <summary>Charges marks 0 .. count - 1 each with the time and launches to the next mark, the last of them to
    /// <paramref name="end"/>, which the device has reached.</summary>
    void Charge(int count, ILGPU.Runtime.ProfilingMarker end, long launchesAtEnd)
    {
        for (int i = 0; i < count; i++)
        {
            var (nextMarker, nextLaunches) = i + 1 < count ? (marks[i + 1].Marker, marks[i + 1].Launches) : (end, launchesAtEnd);
            var (calls, total, launched) = ops.GetValueOrDefault(marks[i].Op);
            ops[marks[i].Op] = (calls + 1, total + nextMarker.MeasureFrom(marks[i].Marker).TotalMilliseconds, launched + nextLaunches - marks[i].Launches);
        }
    }

    void DropMarks()
    {
        foreach (var m in marks) m.Marker.Dispose();
        marks.Clear();
    }

    /// <summary>Per op name: calls, milliseconds, and the kernel launches and device copies made meanwhile.</summary>
    public IReadOnlyDictionary<string, (long Count, double Ms, long Launches)> Totals => ops;

    public string Report(int top = 20)
    {
        double total = ops.Values.Sum(v => v.Ms);
        var sb = new StringBuilder($"{"op",-32} {"calls",8} {"launches",9} {"ms",10} {"share",7}\n");
        var sorted = ops.OrderByDescending(kv => kv.Value.Ms).ToList();
        foreach (var (name, (n, ms, launches)) in sorted.Take(top))
            sb.AppendLine($"{name,-32} {n,8} {launches,9} {ms,10:F1} {ms / Math.Max(total, 1e-9),7:P1}");
        if (sorted.Count > top)
        {
            var rest = sorted.Skip(top).Select(kv => kv.Value).ToList();
            double restMs = rest.Sum(v => v.Ms);
            sb.AppendLine($"{$"({rest.Count} more ops)",-32} {rest.Sum(v => v.Count),8} {rest.Sum(v => v.Launches),9} {restMs,10:F1} {restMs / Math.Max(total, 1e-9),7:P1}");
        }
        return sb.Append($"{"total",-32} {ops.Values.Sum(v => v.Count),8} {ops.Values.Sum(v => v.Launches),9} {total,10:F1}").ToString();
    }
}
