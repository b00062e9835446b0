using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;

namespace KernelDiffusion.Runtime;

/// <summary>One device as <c>kd info</c> prints it. <see cref="Id"/> is what --device accepts (cuda:0, opencl:1, cpu:0).</summary>
public sealed record DeviceInfo(string Id, string Kind, string Name, long MemoryBytes, int WarpSize, int MaxGroupSize,
    long MaxSharedMemoryPerGroup, int Multiprocessors);

/// <summary>Which numbered version of a kernel family runs; null picks the default for the accelerator, or, for a
/// family in <see cref="Auto"/>, the version the device's Autotuner finds fastest at each shape. The KD_KERNELS variable
/// forces some for a whole run (see <see cref="Force"/>).</summary>
public sealed class KernelVersions
{
    public const string EnvironmentVariable = "KD_KERNELS";

    public GemmVersion? Gemm { get; set; }
    public ReduceVersion? Reduce { get; set; }
    public ConvVersion? Conv { get; set; }
    public GroupNormVersion? GroupNorm { get; set; }
    public AttentionVersion? Attention { get; set; }
    public ElementwiseVersion? Elementwise { get; set; }

    /// <summary>The families that tune themselves per shape (KD_KERNELS=auto, or conv=auto): each shape's first call tries
    /// the family's fp32 versions and keeps the fastest whose output matches the default's (see Autotuner). A version
    /// forced by name wins over this.</summary>
    public IReadOnlySet<string> Auto => auto;
    HashSet<string> auto = [];

    /// <summary>The families that can tune themselves: those whose ops overwrite their output and whose versions all
    /// compute the same thing.</summary>
    public static IReadOnlyList<string> Tunable { get; } = ["gemm", "conv", "groupnorm", "attention"];

    /// <summary>Whether the family is in Auto: the ops ask this after finding no version forced by name, which wins.</summary>
    public bool Tunes(string family) => auto.Contains(family);

    /// <summary>Forces versions named as in "gemm=v5,conv=v6" (families gemm, conv, groupnorm, attention, reduce,
    /// elementwise; a version is v and its number, as kd bench lists them), or tuned per shape: "conv=auto", and "auto"
    /// alone for every tunable family (gemm, conv, groupnorm, attention). Throws, changing nothing, on a name it does not know.</summary>
    public void Force(string spec)
    {
        var parsed = new KernelVersions { Gemm = Gemm, Reduce = Reduce, Conv = Conv, GroupNorm = GroupNorm, Attention = Attention, Elementwise = Elementwise, auto = [.. auto] };
        var named = new List<string>();
        foreach (var part in spec.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', StringSplitOptions.TrimEntries);
            if (kv.Length == 1 && kv[0].Equals("auto", StringComparison.OrdinalIgnoreCase))
                foreach (var f in Tunable) parsed.SetAuto(f);
            else if (kv.Length == 2 && kv[1].Equals("auto", StringComparison.OrdinalIgnoreCase))
            {
                string f = kv[0].ToLowerInvariant();
                if (!Tunable.Contains(f))
                    throw new KdException($"{EnvironmentVariable}: '{part}': only {string.Join(", ", Tunable)} tune themselves per shape" +
                                          (Families.ContainsKey(f) ? $"; name a version of {f} instead (for example {f}=v2)" : $" ('{kv[0]}' is not a kernel family)"));
                parsed.SetAuto(f);
            }
            else named.Add(part);
        }
        foreach (var (family, version) in Parse(string.Join(",", named), EnvironmentVariable))
        {
            parsed.auto.Remove(family);
            switch (family)
            {
                case "gemm": parsed.Gemm = (GemmVersion)version; break;
                case "conv": parsed.Conv = (ConvVersion)version; break;
                case "groupnorm": parsed.GroupNorm = (GroupNormVersion)version; break;
                case "attention": parsed.Attention = (AttentionVersion)version; break;
                case "reduce": parsed.Reduce = (ReduceVersion)version; break;
                default: parsed.Elementwise = (ElementwiseVersion)version; break;
            }
        }
        (Gemm, Reduce, Conv, GroupNorm, Attention, Elementwise) = (parsed.Gemm, parsed.Reduce, parsed.Conv, parsed.GroupNorm, parsed.Attention, parsed.Elementwise);
        auto = parsed.auto;
    }

    /// <summary>Tunes a family: clears a version forced by name.</summary>
    void SetAuto(string family)
    {
        auto.Add(family);
        switch (family)
        {
            case "gemm": Gemm = null; break;
            case "conv": Conv = null; break;
            case "groupnorm": GroupNorm = null; break;
            default: Attention = null; break;
        }
    }

    /// <summary>A version as kd bench and the Autotuner print it: v8.hoisted.</summary>
    public static string Label<TV>(TV v) where TV : struct, Enum => "v" + Convert.ToInt32(v) + "." + Tag(v);

    /// <summary>A version's name without its number: "hoisted8" for V9Hoisted8, "vector" for V10Vector.</summary>
    static string Tag(Enum v) => v.ToString().TrimStart('V').TrimStart("0123456789".ToCharArray()).ToLowerInvariant();

    /// <summary>Whether a version runs on tf32 tensor cores (its name ends in Tf32): opt-in by name, never tuned to.</summary>
    public static bool IsTf32<TV>(TV v) where TV : struct, Enum => v.ToString().EndsWith("Tf32", StringComparison.Ordinal);

    /// <summary>Whether a version computes fp32 products as three tf32 ones on the tensor cores (its name ends in Tf32x3:
    /// GEMM v21): its results are fp32's to rounding, its floor a third of the tf32 rate.</summary>
    public static bool IsTf32x3<TV>(TV v) where TV : struct, Enum => v.ToString().EndsWith("Tf32x3", StringComparison.Ordinal);

    /// <summary>The kernel families by the names KD_KERNELS and kd bench --skip-versions use.</summary>
    public static IReadOnlyDictionary<string, Type> Families { get; } = new Dictionary<string, Type>
    {
        ["gemm"] = typeof(GemmVersion), ["conv"] = typeof(ConvVersion), ["groupnorm"] = typeof(GroupNormVersion),
        ["attention"] = typeof(AttentionVersion), ["reduce"] = typeof(ReduceVersion), ["elementwise"] = typeof(ElementwiseVersion),
    };

    /// <summary>The family name of a version enum (gemm for GemmVersion, ...).</summary>
    public static string FamilyOf(Type versionEnum) => Families.First(f => f.Value == versionEnum).Key;

    /// <summary>Reads "family=vN" entries separated by commas or spaces; refuses (naming <paramref name="source"/>) an
    /// unknown family or version, listing the known ones.</summary>
    public static IReadOnlyList<(string Family, Enum Version)> Parse(string spec, string source)
    {
        var list = new List<(string, Enum)>();
        foreach (var part in spec.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || !kv[1].StartsWith('v'))
                throw new KdException($"{source}: '{part}' is not family=vN (for example gemm=v5,conv=v6)");
            string family = kv[0].ToLowerInvariant();
            if (!Families.TryGetValue(family, out var type))
                throw new KdException($"{source}: unknown kernel family '{kv[0]}' in '{part}': use {string.Join(", ", Families.Keys)}");
            if (!int.TryParse(kv[1][1..], out int n) || !Enum.IsDefined(type, n))
            {
                var known = string.Join(", ", Enum.GetValues(type).Cast<Enum>().Select(v => $"v{Convert.ToInt32(v)} ({Tag(v)})"));
                throw new KdException($"{source}: '{part}': no such version (there are {known})");
            }
            list.Add((family, (Enum)Enum.ToObject(type, n)));
        }
        return list;
    }

    /// <summary>The forced versions, as Force reads them ("" when none is forced).</summary>
    public override string ToString() => string.Join(",", new (string, Enum?)[]
        { ("gemm", Gemm), ("conv", Conv), ("groupnorm", GroupNorm), ("attention", Attention), ("reduce", Reduce), ("elementwise", Elementwise) }
        .Where(x => x.Item2 != null).Select(x => $"{x.Item1}=v{Convert.ToInt32(x.Item2)}")
        .Concat(Tunable.Where(auto.Contains).Select(f => $"{f}=auto")));

    /// <summary>Runs f with some versions forced, then restores every choice.</summary>
    public T With<T>(Action<KernelVersions> force, Func<T> f)
    {
        var (gemm, reduce, conv, gn, att, ew, tuned) = (Gemm, Reduce, Conv, GroupNorm, Attention, Elementwise, auto);
        auto = [.. auto];
        force(this);
        try { return f(); }
        finally { (Gemm, Reduce, Conv, GroupNorm, Attention, Elementwise, auto) = (gemm, reduce, conv, gn, att, ew, tuned); }
    }
}

/// <summary>An accelerator with its buffer pool and tape. Chooses CUDA, then OpenCL, then ILGPU's CPU accelerator,
/// unless --device or the KD_DEVICE variable names one: cuda|opencl|cpu, optionally :N (the N-th of that kind).</summary>
public sealed class ComputeDevice : IDisposable
{
    public const string EnvironmentVariable = "KD_DEVICE";
    static readonly string[] Preference = ["cuda", "opencl", "cpu"];

    readonly Context context;
    MemoryBuffer1D<int, Stride1D.Dense>? counter;

    public Accelerator Accelerator { get; }
    public DeviceInfo Info { get; }
    public BufferPool Pool { get; }
    public Tape Tape { get; }
    /// <summary>The device id, with the kernel versions KD_KERNELS forces when it forces any (for what commands print).</summary>
    public string Label => Versions.ToString() is { Length: > 0 } v ? $"{Info.Id}, kernels {v}" : Info.Id;

    /// <summary>Kernel versions forced for this device: KD_KERNELS's, changed by kd check and kd bench as they go.</summary>
    public KernelVersions Versions { get; }

    /// <summary>Runs an op's kernel family at the version KD_KERNELS names, else, for a family in Versions.Auto, at the
    /// version the Autotuner chooses for this shape, else at <paramref name="fallback"/> (the accelerator's default);
    /// returns the version run. The shape's key and the candidates are built only when tuning.</summary>
    public TV RunVersion<TV>(string family, TV? forced, TV fallback, Func<string> key, Func<IEnumerable<TV>> candidates, Action<TV> run,
        params ArrayView<float>[] outputs) where TV : struct, Enum
    {
        if (forced is { } named) { run(named); return named; }
        if (!Versions.Tunes(family)) { run(fallback); return fallback; }
        return Tuner.Choose(family, key(), fallback, candidates(), run, outputs);
    }

    /// <summary>The per-shape choices of the families in Versions.Auto, kept in the device's tuning cache (see
    /// TuningCache: KD_TUNE_CACHE).</summary>
    public Autotuner Tuner
    {
        get => tuner ??= new Autotuner(Accelerator, cache: TuningCache.PathFor(Info) is { } path ? new TuningCache(path) : null, pool: Pool);
        set => tuner = value;
    }
    Autotuner? tuner;

    /// <summary>When set, every op also records its float64 reference there, so the graph can be replayed in float64.</summary>
    public ReferenceGraph? Reference { get; set; }

    /// <summary>When set, op times are collected there (approximate, and it slows the run: see OpProfiler).</summary>
    public OpProfiler? Profiler { get; set; }

    /// <summary>Whether the device's stream takes profiling markers (CUDA events): only when it was opened with
    /// profiling (kd bench, kd train --profile, kd sample) on a backend that has them.</summary>
    public bool TakesStreamMarkers => takesMarkers ??= ProbeMarkers();
    bool? takesMarkers;

    bool ProbeMarkers()
    {
        try
        {
            using var m = Accelerator.DefaultStream.AddProfilingMarker();
            return true;
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or AcceleratorException) { return false; }
    }

    /// <summary>Whether work here is timed on the device's clock, between stream markers: a GPU that takes them. The CPU
    /// accelerator runs its launches as they are made, so the host's clock times them there.</summary>
    public bool TimesOnDevice => !Kernels.Launch.IsCpu(Accelerator) && TakesStreamMarkers;

    /// <summary>A profiler for this device: timed between stream markers where TimesOnDevice (no synchronisation per
    /// op), else by the host with a synchronisation per op (OpProfiler).</summary>
    public OpProfiler NewProfiler() => new(streamMarkers: TimesOnDevice);

    /// <summary>When set, every op checks its inputs for NaN and Inf (one small read-back per input: for debugging).</summary>
    public bool CheckNumerics { get; set; }

    ComputeDevice(Context context, Device device, DeviceInfo info, KernelVersions versions)
    {
        this.context = context;
        Info = info;
        Versions = versions;
        Accelerator = device.CreateAccelerator(context);
        Pool = new BufferPool(Accelerator);
        Tape = new Tape(this);
    }

    /// <summary>All accelerators, as Builder.Default() enables them, except the CPU accelerator's shape: one
    /// multiprocessor per core (the default has one, so a grid-stride kernel would use one core) of 2 threads, 1 warp.
    /// Every launch wakes all of the device's OS threads: measured on 2 cores, a tiny kernel costs about 44-74 us on
    /// this shape against 450-1000 us on the default 4 x 4 threads per multiprocessor.
    /// <paramref name="profiling"/> lets kd bench time runs with stream markers (CUDA events), as PyTorch's do_bench does;
    /// nothing else asks for it.</summary>
    static Context CreateContext(bool profiling = false) => Context.Create(b =>
    {
        Options(b.Cuda().OpenCL().CPU(new CPUDevice(2, 1, Math.Max(1, Environment.ProcessorCount))));
        if (profiling) b.Profiling();
    });

    /// <summary>What every context kd opens enables: bounds assertions, device-side output, ILGPU.Algorithms.</summary>
    static Context.Builder Options(Context.Builder b) => b.AutoAssertions().AutoIOOperations().EnableAlgorithms();

    static string KindOf(Device d) => d.AcceleratorType switch
    {
        AcceleratorType.Cuda => "cuda",
        AcceleratorType.OpenCL => "opencl",
        AcceleratorType.CPU => "cpu",
        var other => other.ToString().ToLowerInvariant(),
    };

    static List<(Device Device, DeviceInfo Info)> Enumerate(Context ctx)
    {
        var seen = new Dictionary<string, int>();
        var list = new List<(Device, DeviceInfo)>();
        foreach (var d in ctx.Devices)
        {
            string kind = KindOf(d);
            int n = seen.GetValueOrDefault(kind);
            seen[kind] = n + 1;
            list.Add((d, new DeviceInfo($"{kind}:{n}", kind, d.Name, d.MemorySize, d.WarpSize, d.MaxNumThreadsPerGroup,
                d.MaxSharedMemoryPerGroup, d.NumMultiprocessors)));
        }
        return list;
    }

    /// <summary>All devices ILGPU sees, and the id that <paramref name="spec"/> would choose (null when it would fail).</summary>
    public static (IReadOnlyList<DeviceInfo> Devices, string? Chosen, string? Error) Describe(string? spec = null)
    {
        using var ctx = CreateContext();
        var all = Enumerate(ctx);
        try { return (all.Select(x => x.Info).ToList(), Select(all, spec).Info.Id, null); }
        catch (KdException e) { return (all.Select(x => x.Info).ToList(), null, e.Message); }
    }

    /// <summary>The spec in force: the argument, else KD_DEVICE, else "auto".</summary>
    public static string EffectiveSpec(string? spec)
    {
        if (!string.IsNullOrWhiteSpace(spec)) return spec.Trim().ToLowerInvariant();
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(env) ? "auto" : env.Trim().ToLowerInvariant();
    }

    static (Device Device, DeviceInfo Info) Select(List<(Device Device, DeviceInfo Info)> all, string? spec)
    {
        string s = EffectiveSpec(spec);
        string found = all.Count == 0 ? "none" : string.Join("; ", all.Select(x => $"{x.Info.Id} ({x.Info.Name})"));
        if (s == "auto")
        {
            foreach (var kind in Preference)
                foreach (var x in all)
                    if (x.Info.Kind == kind) return x;
            throw new KdException($"no device found (ILGPU lists: {found})");
        }
        var parts = s.Split(':');
        if (parts.Length > 2 || !Preference.Contains(parts[0]))
            throw new KdException($"unknown device '{s}': use auto, cuda, opencl or cpu, optionally with :N (devices found: {found})");
        int index = 0;
        if (parts.Length == 2 && (!int.TryParse(parts[1], out index) || index < 0))
            throw new KdException($"device '{s}': ':{parts[1]}' is not a device number (devices found: {found})");
        var match = all.FirstOrDefault(x => x.Info.Id == $"{parts[0]}:{index}");
        if (match.Device == null)
            throw new KdException($"device '{s}' is not available (devices found: {found})");
        return match;
    }

    /// <summary>A CPU accelerator of <paramref name="warpSize"/>-lane warps, <paramref name="warpsPerGroup"/> to a group, one
    /// multiprocessor: kd check runs GPU-shaped kernels (attention v8's 128-thread groups of 32-lane warps) through the
    /// ops on it where the device has no such groups.</summary>
    public static ComputeDevice OpenShapedCpu(int warpSize, int warpsPerGroup)
    {
        var ctx = Context.Create(b => Options(b.CPU(new CPUDevice(warpSize, warpsPerGroup, 1))));
        var (device, info) = Enumerate(ctx)[0];
        return new ComputeDevice(ctx, device, info with { Id = $"cpu:{warpSize}x{warpsPerGroup}" }, new KernelVersions());
    }

    /// <summary>Opens the device named by <paramref name="spec"/> (see the class summary).</summary>
    public static ComputeDevice Open(string? spec = null, bool profiling = false)
    {
        var versions = new KernelVersions();
        var forced = Environment.GetEnvironmentVariable(KernelVersions.EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(forced)) versions.Force(forced);   // a bad name is refused before any device opens
        var ctx = CreateContext(profiling);
        try
        {
            var (device, info) = Select(Enumerate(ctx), spec);
            return new ComputeDevice(ctx, device, info, versions);
        }
        catch
        {
            ctx.Dispose();
            throw;
        }
    }

    public void Synchronize() => Wait(Accelerator.Synchronize);

    /// <summary>Milliseconds the host has spent waiting for this device (synchronising, and reading results back, which
    /// waits for the work before it) since the device was opened. kd bench subtracts it from a step's host time to tell
    /// the time the host spends issuing work.</summary>
    public double WaitMs { get; private set; }

    /// <summary>How many times the host has waited for this device (WaitMs's count).</summary>
    public long Waits { get; private set; }

    /// <summary>Runs <paramref name="wait"/> (a synchronisation, or a read-back and its synchronisation) and adds its time
    /// to WaitMs: every wait of the host for this device goes through here.</summary>
    internal void Wait(Action wait)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        wait();
        WaitMs += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Waits++;
    }

    // ---- tensor factories: persistent tensors belong to the caller (Dispose returns them to the pool) ----

    public Tensor Empty(int[] shape, string name = "tensor") => new(this, shape, name, persistent: true);

    public Tensor Zeros(int[] shape, string name = "zeros")
    {
        var t = Empty(shape, name);
        t.Fill(0);
        return t;
    }

    public Tensor FromArray(float[] data, int[] shape, string name = "tensor")
    {
        var t = Empty(shape, name);
        t.CopyFrom(data);
        return t;
    }

    /// <summary>A trainable tensor: persistent and RequiresGrad.</summary>
    public Tensor Parameter(float[] data, int[] shape, string name)
    {
        var t = FromArray(data, shape, name);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>Integer class labels, stored as floats (exact below 2^24); each must lie in [0, classes).</summary>
    public Tensor Labels(int[] labels, int classes, string name = "labels")
    {
        var t = Empty([labels.Length], name);
        t.CopyFrom(LabelValues(labels, classes, name));
        return t;
    }

    /// <summary>Labels for one step: owned by the tape, released on reset.</summary>
    public Tensor TemporaryLabels(int[] labels, int classes, string name = "labels")
    {
        var t = Temporary([labels.Length], name);
        t.CopyFrom(LabelValues(labels, classes, name));
        return t;
    }

    static float[] LabelValues(int[] labels, int classes, string name)
    {
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] < 0 || labels[i] >= classes)
                throw new KdException($"labels '{name}': label {labels[i]} at position {i} is outside [0, {classes})");
        return labels.Select(l => (float)l).ToArray();
    }

    /// <summary>An op's output: lives until the tape is reset.</summary>
    internal Tensor Temporary(int[] shape, string name)
    {
        var t = new Tensor(this, shape, name, persistent: false);
        Tape.Own(t);
        return t;
    }

    /// <summary>Throws when <paramref name="t"/> holds NaN or Inf, naming the op and the tensor.</summary>
    public void AssertFinite(string op, Tensor t)
    {
        counter ??= Accelerator.Allocate1D<int>(1);
        Reduce.CountNonFinite(Accelerator, t.View, counter.View, t.Length);
        var bad = new int[1];
        Wait(() =>
        {
            counter.View.CopyToCPU(Accelerator.DefaultStream, bad);
            Accelerator.DefaultStream.Synchronize();
        });
        if (bad[0] > 0)
            throw new KdException($"{op}: tensor '{t.Name}' {t.ShapeText} contains NaN or Inf ({bad[0]} of {t.Length} values)");
    }

    public void Dispose()
    {
        Tape.Reset();
        counter?.Dispose();
        tuner?.Dispose();
        Pool.Dispose();
        Accelerator.Dispose();
        context.Dispose();
    }
}
