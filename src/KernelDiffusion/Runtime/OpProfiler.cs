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
/// measured and their markers freed, so a long run does not hold a marker per op; that wait and work are the row
/// <see cref="FoldRow"/>.</para>
/// <para>Each mark may name the op's shapes (its inputs' for an op, the forward's for its backward node; a part takes
/// its op's): <see cref="ShapeTotals"/> and <see cref="ShapeReport"/> split every op by them, to tell which layer of a
/// model the time goes to.</para>
/// <para>With stream markers each op also gets the host's time from its mark to the next (<see cref="Totals"/>' HostMs,
/// the tables' "host ms"): where the device's time for an op that launches nothing is long and the host's short, the device
/// was idle for a reason the host did not spend there; where both are long, the host held it up.</para></summary>
public sealed class OpProfiler(bool streamMarkers = false, int foldEvery = 4096)
{
    readonly Dictionary<string, (long Count, double Ms, long Launches, double HostMs, double LongestMs)> ops = [], byShape = [];
    readonly Stopwatch clock = new();
    string? current, currentKey;
    long launchesAtStart;

    /// <summary>The shapes the running op was marked with (a part's mark keeps them); a backward node records them.</summary>
    public string? CurrentShapes { get; private set; }

    /// <summary>Marks on the device's stream not yet measured: (op, op and shapes, marker, launches so far, the host's
    /// clock when it was made).</summary>
    readonly List<(string Op, string Key, ILGPU.Runtime.ProfilingMarker Marker, long Launches, long HostTicks)> marks = [];
    ComputeDevice? device;

    /// <summary>Whether ops are timed between stream markers on the device's clock (see the class), not by the host.</summary>
    public bool StreamMarkers { get; } = streamMarkers;

    /// <summary>Charges what ran since the last mark and starts charging <paramref name="op"/> (at
    /// <paramref name="shapes"/>, where given). A part (<paramref name="part"/>) under the name already charged continues
    /// that call instead of starting another; a part keeps its op's shapes.</summary>
    public void Mark(ComputeDevice d, string op, bool part = false, string? shapes = null)
    {
        if (part && op == current) return;
        shapes ??= part ? CurrentShapes : null;
        string key = shapes == null ? op : $"{op} {shapes}";
        if (StreamMarkers)
        {
            device = d;
            // A fold waits for the device and then measures and frees its markers while the device idles (an H200 profile
            // showed one 12 ms call where a fold fell): its own mark, before the op's, keeps that time out of the op's row.
            if (marks.Count + 1 >= Math.Max(2, foldEvery))
            {
                AddMark(d, FoldRow, FoldRow);
                Fold();
            }
            AddMark(d, op, key);
            (current, currentKey, CurrentShapes) = (op, key, shapes);
            return;
        }
        d.Synchronize();
        Close();
        (current, currentKey, CurrentShapes) = (op, key, shapes);
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
        byShape.Clear();
        (current, currentKey, CurrentShapes) = (null, null, null);
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
                long host = Stopwatch.GetTimestamp();
                using var end = device.Accelerator.DefaultStream.AddProfilingMarker();
                end.Synchronize();
                Charge(marks.Count, end, Kernels.KernelCache.Launches, host);
            }
            DropMarks();
            (current, currentKey, CurrentShapes) = (null, null, null);
            return;
        }
        if (current == null) return;
        Add(current, currentKey!, clock.Elapsed.TotalMilliseconds, Kernels.KernelCache.Launches - launchesAtStart);
        (current, currentKey, CurrentShapes) = (null, null, null);
    }

    /// <summary>One call of <paramref name="op"/> (at <paramref name="key"/>: op and shapes) into both tables, with the
    /// host's time where stream markers measured the device's.</summary>
    void Add(string op, string key, double ms, long launches, double hostMs = 0)
    {
        Accumulate(ops, op, ms, launches, hostMs);
        Accumulate(byShape, key, ms, launches, hostMs);
    }

    static void Accumulate(Dictionary<string, (long Count, double Ms, long Launches, double HostMs, double LongestMs)> rows, string key, double ms, long launches, double hostMs)
    {
        var (n, total, launched, host, longest) = rows.GetValueOrDefault(key);
        rows[key] = (n + 1, total + ms, launched + launches, host + hostMs, Math.Max(longest, ms));
    }

    /// <summary>The row that holds the profiler's own folds (with stream markers): the host measuring and freeing the
    /// markers while the device waits.</summary>
    public const string FoldRow = "(profiler)";

    void AddMark(ComputeDevice d, string op, string key)
        => marks.Add((op, key, d.Accelerator.DefaultStream.AddProfilingMarker(), Kernels.KernelCache.Launches, Stopwatch.GetTimestamp()));

    /// <summary>Measures every mark's interval but the last's (the running op's: it has no end yet), which stays.</summary>
    void Fold()
    {
        var last = marks[^1];
        last.Marker.Synchronize();
        Charge(marks.Count - 1, last.Marker, last.Launches, last.HostTicks);
        marks.RemoveAt(marks.Count - 1);
        DropMarks();
        marks.Add(last);
    }

    /// <summary>Charges marks 0 .. count - 1 each with the time, launches and host time to the next mark, the last of
    /// them to <paramref name="end"/>, which the device has reached (made at the host's <paramref name="endTicks"/>).</summary>
    void Charge(int count, ILGPU.Runtime.ProfilingMarker end, long launchesAtEnd, long endTicks)
    {
        for (int i = 0; i < count; i++)
        {
            var (nextMarker, nextLaunches, nextTicks) = i + 1 < count ? (marks[i + 1].Marker, marks[i + 1].Launches, marks[i + 1].HostTicks)
                : (end, launchesAtEnd, endTicks);
            Add(marks[i].Op, marks[i].Key, nextMarker.MeasureFrom(marks[i].Marker).TotalMilliseconds, nextLaunches - marks[i].Launches,
                Stopwatch.GetElapsedTime(marks[i].HostTicks, nextTicks).TotalMilliseconds);
        }
    }

    void DropMarks()
    {
        foreach (var m in marks) m.Marker.Dispose();
        marks.Clear();
    }

    /// <summary>Per op name: calls, milliseconds, the kernel launches and device copies made meanwhile, with stream
    /// markers the host's milliseconds from each of its marks to the next (0 with the host's clock, whose times are the
    /// host's already), and the longest call's milliseconds (whether a row's time is spread over its calls or one call's
    /// wait).</summary>
    public IReadOnlyDictionary<string, (long Count, double Ms, long Launches, double HostMs, double LongestMs)> Totals => ops;

    /// <summary>Per op name and the shapes it was marked with ("op" alone where none were given): the same figures.</summary>
    public IReadOnlyDictionary<string, (long Count, double Ms, long Launches, double HostMs, double LongestMs)> ShapeTotals => byShape;

    /// <summary>The table per op: the <paramref name="top"/> longest, the rest summed in one line, and the total.</summary>
    public string Report(int top = 20) => Table(ops, "op", 32, top, "ops");

    /// <summary>The table per op and shapes (ShapeTotals), as Report.</summary>
    public string ShapeReport(int top = 30) => Table(byShape, "op and shapes", 72, top, "rows");

    /// <summary>The rows, longest first, each with its longest call ("longest"); a "host ms" column where host times were
    /// kept (stream markers).</summary>
    string Table(Dictionary<string, (long Count, double Ms, long Launches, double HostMs, double LongestMs)> rows, string title, int width, int top, string restName)
    {
        string Host(double ms) => StreamMarkers ? $" {ms,10:F1}" : "";
        double total = rows.Values.Sum(v => v.Ms);
        var sb = new StringBuilder($"{title.PadRight(width)} {"calls",8} {"launches",9} {"ms",10} {"share",7} {"longest",8}{(StreamMarkers ? $" {"host ms",10}" : "")}\n");
        var sorted = rows.OrderByDescending(kv => kv.Value.Ms).ToList();
        foreach (var (name, (n, ms, launches, hostMs, longest)) in sorted.Take(top))
            sb.AppendLine($"{name.PadRight(width)} {n,8} {launches,9} {ms,10:F1} {ms / Math.Max(total, 1e-9),7:P1} {longest,8:F2}{Host(hostMs)}");
        if (sorted.Count > top)
        {
            var rest = sorted.Skip(top).ToList();
            double restMs = rest.Sum(kv => kv.Value.Ms);
            sb.AppendLine($"{$"({rest.Count} more {restName})".PadRight(width)} {rest.Sum(kv => kv.Value.Count),8} {rest.Sum(kv => kv.Value.Launches),9} {restMs,10:F1} " +
                          $"{restMs / Math.Max(total, 1e-9),7:P1} {rest.Max(kv => kv.Value.LongestMs),8:F2}{Host(rest.Sum(kv => kv.Value.HostMs))}");
        }
        return sb.Append($"{"total".PadRight(width)} {rows.Values.Sum(v => v.Count),8} {rows.Values.Sum(v => v.Launches),9} {total,10:F1}" +
                         $"{(StreamMarkers ? $" {"",7} {"",8}{Host(rows.Values.Sum(v => v.HostMs))}" : "")}").ToString();
    }
}
