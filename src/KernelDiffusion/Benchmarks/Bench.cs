using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using System.Text.Json;
using System.Text.Json.Nodes;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Benchmarks;

/// <summary>One timed case: a kernel (at one version) or a whole-model step. Ms is the median time; Cost the
/// kernel's FLOP and byte counts (zero for steps); FloorMs the roofline floor max(FLOPs / peak, bytes / bandwidth);
/// Launches the kernel launches of one run; for whole steps, LaunchesByKernel splits them by kernel.</summary>
/// <param name="PoolMiB">Whole-model steps: the device memory the buffer pool held after the case (started empty), i.e. the
/// step's footprint, since the pool keeps what it allocated.</param>
/// <param name="GcPauseMs">Whole-model steps on a GPU: the .NET garbage collector's pauses while the host issued a run
/// (median per run), and GcCollections its collections per run (mean): host time in which no launch is issued.</param>
public sealed record BenchResult(string Name, string Version, bool IsDefault, double Ms, KernelCost Cost, double FloorMs, long Launches, string? Error = null,
    IReadOnlyDictionary<string, long>? LaunchesByKernel = null, double? PoolMiB = null, double? HostMs = null, double? GcPauseMs = null,
    double? GcCollections = null)
{
    public double GBs => Cost.Bytes / (Ms * 1e6);
    public double TFlops => Cost.Flops / (Ms * 1e9);
    /// <summary>Floor over time: 1 means the kernel runs at the roofline.</summary>
    public double Roofline => FloorMs > 0 && Ms > 0 ? FloorMs / Ms : double.NaN;
}

/// <summary>The card's measured ceilings: device-to-device copy bandwidth (read + write), fp32 FMA rate, and the tf32
/// tensor-core rate (NaN where the tensor-core kernels cannot run: a tf32 version's floor then uses the fp32 rate).</summary>
public sealed record Peak(double CopyGBs, double Fp32TFlops, double Tf32TFlops = double.NaN)
{
    public double FloorMs(KernelCost c)
    {
        bool mma = c.Tf32 && Tf32TFlops > 0;
        double flops = mma ? c.Flops * Math.Max(1, c.Tf32Passes) : c.Flops;
        return Math.Max(flops / ((mma ? Tf32TFlops : Fp32TFlops) * 1e9), c.Bytes / (CopyGBs * 1e6));
    }
}

/// <summary>The cases of bench/cases.json (shared with bench/torch_reference.py, joined by name in bench/join.py).</summary>
public sealed class BenchCases
{
    public required IReadOnlyList<JsonObject> Kernels { get; init; }
    public required IReadOnlyList<JsonObject> Steps { get; init; }

    /// <summary>Reads the cases; with <paramref name="quick"/> each case's "quick" values replace its own (CPU smoke runs).</summary>
    public static BenchCases Load(string path, bool quick)
    {
        if (!File.Exists(path)) throw new KdException($"bench: no case file '{path}' (it is bench/cases.json in the repository; --cases names another)");
        JsonNode root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new KdException($"bench: '{path}' is not valid JSON: {e.Message}"); }
        List<JsonObject> Read(string key) => (root[key] as JsonArray ?? throw new KdException($"bench: '{path}' has no \"{key}\" list"))
            .Select(n =>
            {
                var o = (JsonObject)n!.DeepClone();
                if (quick && o["quick"] is JsonObject q)
                    foreach (var (k, v) in q) o[k] = v?.DeepClone();
                o.Remove("quick");
                return o;
            }).ToList();
        var cases = new BenchCases { Kernels = Read("kernels"), Steps = Read("steps") };
        foreach (var c in cases.Kernels) Check(path, c, KernelOps);
        foreach (var c in cases.Steps) Check(path, c, StepOps);
        return cases;
    }

    /// <summary>Each op's fields, as "name:kind" (kind: i a positive integer, x four of them (NCHW), n a number, s a
    /// string, b true or false; "?" after the kind: optional). What BenchRunner reads.</summary>
    static readonly Dictionary<string, string[]> KernelOps = new()
    {
        ["silu"] = ["n:i"],
        ["sampling_step"] = ["x:x", "w:n"],
        ["group_norm"] = ["x:x", "groups:i", "silu:b?", "scale_shift:b?", "backward:b?"],
        ["adamw"] = ["n:i"],
        ["gemm"] = ["m:i", "n:i", "k:i", "batch:i?", "shared_a:b?", "trans_a:b?", "trans_b:b?"],
        ["conv3x3"] = ["x:x", "cout:i", "backward:b?", "r:i?"],
        ["conv3x3_pass"] = ["pass:s", "x:x", "cout:i", "r:i?"],
        ["attention"] = ["batch:i", "heads:i", "head_dim:i", "tokens:i", "backward:b?"],
        ["sum"] = ["x:x", "to:x"],
    };
    static readonly Dictionary<string, string[]> StepOps = new()
    {
        ["train_step"] = ["config:s", "batch:i"],
        ["cfg_step"] = ["config:s", "batch:i"],
        ["classifier_gradient"] = ["config:s", "batch:i"],
    };

    /// <summary>Each field kind: whether a value is one, and what it should be, for the error.</summary>
    static readonly Dictionary<string, (Func<JsonNode?, bool> Ok, string Want)> Kinds = new()
    {
        ["i"] = (v => v is JsonValue iv && iv.TryGetValue(out int i) && i > 0, "a positive integer"),
        ["x"] = (v => v is JsonArray a && a.Count == 4 && a.All(e => e is JsonValue ev && ev.TryGetValue(out int d) && d > 0), "four positive integers [N, C, H, W]"),
        ["n"] = (v => v is JsonValue dv && dv.TryGetValue(out double _), "a number"),
        ["s"] = (v => v is JsonValue sv && sv.TryGetValue(out string? _), "a string"),
        ["b"] = (v => v is JsonValue bv && bv.TryGetValue(out bool _), "true or false"),
    };

    /// <summary>Refuses a case that BenchRunner could not read, before anything runs: naming the file, the case, the field
    /// and what it should be.</summary>
    static void Check(string path, JsonObject c, Dictionary<string, string[]> ops)
    {
        string name = c["name"] is JsonValue nv && nv.TryGetValue(out string? nm) ? nm : throw new KdException($"bench: '{path}': a case has no \"name\"");
        string op = c["op"] is JsonValue ov && ov.TryGetValue(out string? o) ? o : "";
        if (!ops.TryGetValue(op, out var fields))
            throw new KdException($"bench: '{path}': case '{name}' has {(op == "" ? "no op" : $"an unknown op '{op}'")} (ops here: {string.Join(", ", ops.Keys)})");
        foreach (var f in fields)
        {
            string key = f[..f.IndexOf(':')], kind = f[(f.IndexOf(':') + 1)..];
            var v = c[key];
            if (v == null && kind.EndsWith('?')) continue;
            var (ok, want) = Kinds[kind.TrimEnd('?')];
            if (!ok(v))
                throw new KdException($"bench: '{path}': case '{name}' ({op}) needs \"{key}\": {want}" + (v == null ? ", and has none" : $", not {v.ToJsonString()}"));
        }
        if (op.StartsWith("conv3x3") && c["r"] is JsonNode r && (int)r is not (1 or 3))
            throw new KdException($"bench: '{path}': case '{name}' ({op}) needs \"r\": 1 or 3 (the kernel's side), not {r.ToJsonString()}");
        if (op == "conv3x3_pass" && (string)c["pass"]! is not ("forward" or "input_grad" or "weight_grad"))
            throw new KdException($"bench: '{path}': case '{name}' (conv3x3_pass) needs \"pass\": forward, input_grad or weight_grad, not '{(string)c["pass"]!}'");
    }
}

/// <summary>Times a run: one warm-up (it compiles), one timed run (its launches counted), then repetitions to fill
/// <see cref="BudgetMs"/>; the median per run. On a GPU, as triton's do_bench: the L2 cache is cleared (a 256 MiB
/// memset) before each run, which is timed alone between two stream markers (CUDA events). On the CPU accelerator: an
/// inner loop of at least about a millisecond, synchronising after each loop.</summary>
public sealed class BenchTimer(ComputeDevice d) : IDisposable
{
    public double BudgetMs { get; init; } = 300;
    public int MinReps { get; init; } = 5;

    MemoryBuffer1D<byte, Stride1D.Dense>? scratch;

    /// <summary>On a GPU (runs timed between stream markers), the last Time call's median host time per run spent issuing
    /// work, not waiting for the device (ComputeDevice.WaitMs): a run whose host time nears its device time is bound by
    /// the host (launch overhead, host work between launches). Null for runs timed by the host loop (the CPU
    /// accelerator runs kernels as it launches them).</summary>
    public double? LastHostMs { get; private set; }

    /// <summary>With LastHostMs: the last Time call's median garbage-collection pause per run while the host issued it,
    /// and its mean collections per run (GC.GetTotalPauseDuration, GC.CollectionCount).</summary>
    public double? LastGcPauseMs { get; private set; }
    public double? LastGcCollections { get; private set; }

    /// <summary>The launches of the last Time call's counted run, per kernel key, most first.</summary>
    public IReadOnlyDictionary<string, long> LastLaunchesByKernel { get; private set; } = new Dictionary<string, long>();

    /// <summary><paramref name="minReps"/> replaces MinReps (whole steps take up to seconds each: fewer).</summary>
    public (double Ms, long Launches) Time(Action run, int? minReps = null)
    {
        int least = minReps ?? MinReps;
        run();
        d.Synchronize();
        var before = KernelCache.LaunchesByKernel();
        var clock = Stopwatch.StartNew();
        run();
        d.Synchronize();
        double once = Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3);
        LastLaunchesByKernel = KernelCache.LaunchesByKernel()
            .Select(kv => (kv.Key, Count: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(x => x.Count > 0).OrderByDescending(x => x.Count).ThenBy(x => x.Key, StringComparer.Ordinal)
            .ToDictionary(x => x.Key, x => x.Count);
        long launches = LastLaunchesByKernel.Values.Sum();
        LastHostMs = LastGcPauseMs = LastGcCollections = null;
        if (ColdCache) return (ColdCacheMedian(run, once, least), launches);
        int inner = Math.Clamp((int)(1.0 / once), 1, 200);
        // A run slower than the whole budget (a CPU-minded version on a GPU: seconds) is timed once more, not MinReps times.
        int reps = once > BudgetMs ? 1 : Math.Clamp((int)(BudgetMs / (once * inner)), least, 100);
        var times = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            clock.Restart();
            for (int i = 0; i < inner; i++) run();
            d.Synchronize();
            times[r] = clock.Elapsed.TotalMilliseconds / inner;
        }
        Array.Sort(times);
        return (times[reps / 2], launches);
    }

    bool saidHostLoop;

    /// <summary>Whether runs are timed one by one with a cleared cache, between stream markers (ComputeDevice.TimesOnDevice);
    /// a GPU that takes no markers is timed by the host loop, and said once.</summary>
    public bool ColdCache
    {
        get
        {
            if (!d.TimesOnDevice && !Launch.IsCpu(d.Accelerator) && !saidHostLoop)
            {
                Console.Error.WriteLine($"bench: {d.Info.Id} takes no profiling markers: timing with a host loop, warm cache");
                saidHostLoop = true;
            }
            return d.TimesOnDevice;
        }
    }

    double ColdCacheMedian(Action run, double once, int least)
    {
        scratch ??= d.Accelerator.Allocate1D<byte>(256L << 20);
        int reps = once > BudgetMs ? 1 : Math.Clamp((int)(BudgetMs / once), least, 100);
        var times = new double[reps];
        var host = new double[reps];
        var paused = new double[reps];
        long collections = 0;
        var stream = d.Accelerator.DefaultStream;
        for (int r = 0; r < reps; r++)
        {
            scratch.MemSetToZero();
            var start = stream.AddProfilingMarker();
            double waited = d.WaitMs;
            var pause = GC.GetTotalPauseDuration();
            int gcs = GC.CollectionCount(0);   // counts every collection (a gen1 or gen2 collection collects gen0 too)
            long issue = Stopwatch.GetTimestamp();
            run();
            host[r] = Stopwatch.GetElapsedTime(issue).TotalMilliseconds - (d.WaitMs - waited);
            paused[r] = (GC.GetTotalPauseDuration() - pause).TotalMilliseconds;
            collections += GC.CollectionCount(0) - gcs;
            var end = stream.AddProfilingMarker();
            d.Synchronize();
            times[r] = end.MeasureFrom(start).TotalMilliseconds;
            start.Dispose();
            end.Dispose();
        }
        Array.Sort(times);
        Array.Sort(host);
        Array.Sort(paused);
        LastHostMs = host[reps / 2];
        LastGcPauseMs = paused[reps / 2];
        LastGcCollections = (double)collections / reps;
        return times[reps / 2];
    }

    public void Dispose() => scratch?.Dispose();

    /// <summary>Copy bandwidth (bytes read + written per second) of a device-to-device copy of 256 MiB (1 MiB on the
    /// CPU accelerator), the fp32 rate of a kernel of independent FMA chains, and where the tensor-core kernels run,
    /// the tf32 rate of independent mma chains.</summary>
    public Peak MeasurePeak()
    {
        bool cpu = Launch.IsCpu(d.Accelerator);
        long n = cpu ? 1 << 18 : 1 << 26;
        using var a = d.Accelerator.Allocate1D<float>(n);
        using var b = d.Accelerator.Allocate1D<float>(n);
        a.MemSetToZero();
        var (copyMs, _) = Time(() => a.View.CopyTo(b.View));
        var fma = PeakRate.Shape(d.Accelerator);
        using var sink = d.Accelerator.Allocate1D<float>(fma.Threads);
        var (fmaMs, _) = Time(() => PeakRate.Run(d.Accelerator, sink.View, fma));
        double tf32 = double.NaN;
        if (TensorCore.Runs(d.Accelerator))
        {
            var mma = PeakRate.MmaShape(d.Accelerator);
            using var mmaSink = d.Accelerator.Allocate1D<float>(mma.Threads);
            var (mmaMs, _) = Time(() => PeakRate.RunMma(d.Accelerator, mmaSink.View, mma));
            tf32 = PeakRate.MmaFlops(mma) / (mmaMs * 1e9);
        }
        return new Peak(8.0 * n / (copyMs * 1e6), PeakRate.Flops(fma) / (fmaMs * 1e9), tf32);
    }
}
