using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Runtime;

/// <summary>Chooses a kernel family's version per shape by trying them, as cuDNN's benchmark mode does
/// (KD_KERNELS=auto, or conv=auto,gemm=auto). The first call at a shape runs the default version on the op's own
/// inputs and keeps its output; then each candidate runs, must match that output, and is timed; the fastest that
/// matches is kept for the shape. Later calls at the shape run it directly. Tuning costs only the first call: a
/// training run or a sampler pays it in its first step.</summary>
/// <remarks>Candidates are a family's fp32 versions that can run on the device; the tf32 ones change results (10-bit
/// mantissas) and are chosen only by name. A candidate that throws, or whose output differs from the default's by more
/// than <see cref="Tolerance"/> of the outputs' largest magnitude (or is not finite where the default's is), is
/// rejected and the rejection kept in <see cref="Choices"/>. Every op tuned this way overwrites its output, so trying a
/// version has no other effect; the chosen one runs last, leaving its own result. With a <see cref="TuningCache"/>,
/// choices are kept between processes: a shape found there is not tried again.</remarks>
public sealed class Autotuner(Accelerator acc, Func<Action, double>? time = null, TuningCache? cache = null, BufferPool? pool = null) : IDisposable
{
    /// <summary>How far (relative to the default output's largest magnitude) a candidate may land from the default: far
    /// above fp32 reordering error (kd check's fp32 GEMM and conv cases land within 7e-7 of float64), far below what a
    /// wrong index gives.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Timed runs per candidate after its first (which compiles it and is checked); fewer for a candidate
    /// already over three times the best.</summary>
    public const int Reps = 3;

    /// <summary>One version tried at a shape: its best time, or why it was rejected.</summary>
    public sealed record Trial(string Version, double Ms, string? Rejected);

    /// <summary>What was chosen at one shape, and every trial (for a choice read from the cache: the chosen version's and
    /// the default's times when it was made).</summary>
    public sealed record Choice(string Family, string Key, string Version, string Default, IReadOnlyList<Trial> Trials, bool Cached = false)
    {
        public double Ms => Trials.First(t => t.Version == Version).Ms;
        public double DefaultMs => Trials.First(t => t.Version == Default).Ms;
    }

    readonly Func<Action, double> time = time ?? (run => TimeOnce(acc, run));
    readonly Dictionary<string, (Enum Version, Choice Choice)> chosen = new();
    MemoryBuffer1D<uint, Stride1D.Dense>? largest;

    /// <summary>One value on the device for the comparisons' maxima, kept for the process (a tuner lives as long as its device).</summary>
    MemoryBuffer1D<uint, Stride1D.Dense> Largest => largest ??= acc.Allocate1D<uint>(1);

    public void Dispose() => largest?.Dispose();

    /// <summary>Told what is being tried while a shape is tuned (for a progress bar: tuning can take seconds), and null
    /// when the shape is done.</summary>
    public Action<string?>? Trying { get; set; }

    /// <summary>Times outputs were copied to the host: only to explain a rejected candidate (its outputs and the
    /// default's, two reads); the default's scale and every match are found on the device.</summary>
    public int HostReads { get; private set; }

    /// <summary>Every shape tuned so far, in the order they were met.</summary>
    public IReadOnlyList<Choice> Choices => chosen.Values.Select(c => c.Choice).ToList();

    /// <summary>The version already chosen at <paramref name="key"/> in this process, without running anything: for an op
    /// whose trials do more than its calls (attention tries each forward with its backward).</summary>
    public TV? Known<TV>(string family, string key) where TV : struct, Enum
        => chosen.TryGetValue(family + " " + key, out var known) ? (TV)known.Version : null;

    /// <summary>The version to run at <paramref name="key"/> (a family's shape, as it names it). The first time, tunes:
    /// <paramref name="run"/> runs a version, overwriting <paramref name="outputs"/> (all compared); afterwards they hold
    /// the chosen version's results. When the default's own output is not finite, nothing is chosen (there is nothing to compare
    /// against): the default's result stays and the next call tries again.</summary>
    public TV Choose<TV>(string family, string key, TV fallback, IEnumerable<TV> candidates, Action<TV> run, params ArrayView<float>[] outputs)
        where TV : struct, Enum
    {
        string fullKey = family + " " + key;
        if (chosen.TryGetValue(fullKey, out var known)) { run((TV)known.Version); return (TV)known.Version; }
        var list = candidates.Distinct().ToList();
        if (list.All(v => v.Equals(fallback))) { run(fallback); return fallback; }   // nothing to choose from
        if (cache?.Find(fullKey) is { } saved && Number(saved.Version) is int n && list.Any(v => Convert.ToInt32(v) == n))
        {
            var v = (TV)Enum.ToObject(typeof(TV), n);
            run(v);
            chosen[fullKey] = (v, saved with { Family = family, Key = key, Cached = true });
            return v;
        }

        void Say(string what) => Trying?.Invoke($"tuning kernels, shape {chosen.Count + 1}: {family} {key}: {what}");
        Say($"{KernelVersions.Label(fallback)} (the default)");
        run(fallback);   // compiles it; its output is the reference
        // Everything is compared on the device, one float back per output (a conv pass's output at batch 256 is 51 MB):
        // the reference's largest magnitude (+Inf where a value is not finite: nothing to compare against then), and
        // each candidate's largest difference from a device copy of it. Outputs reach the host only to explain a rejection.
        var largest = Largest;
        double scale = outputs.Select(o => (double)Kernels.Reduce.MaxAbs(acc, o, largest.View, (int)o.Length)).DefaultIfEmpty(0).Max();
        if (!double.IsFinite(scale)) { Trying?.Invoke(null); return fallback; }
        var order = new List<TV> { fallback };
        var rejected = new Dictionary<TV, string>();
        // The reference copies come from the device's pool where there is one: it frees its cache and retries when the
        // device is full, as for any op's output (a conv pass's output at batch 256 is 51 MB).
        var kept = outputs.Select(o => pool?.Rent((int)Math.Max(1, o.Length)) ?? acc.Allocate1D<float>(Math.Max(1, o.Length))).ToList();
        var reference = outputs.Select((o, i) => (ArrayView<float>)kept[i].View.SubView(0, o.Length)).ToArray();
        try
        {
            for (int i = 0; i < outputs.Length; i++) reference[i].CopyFrom(acc.DefaultStream, outputs[i]);
            foreach (var v in list.Where(v => !v.Equals(fallback)))
            {
                order.Add(v);
                Say($"checking {KernelVersions.Label(v)} against the default");
                try
                {
                    run(v);   // compiles it
                    double worst = outputs.Select((o, i) => (double)Kernels.Reduce.MaxAbsDifference(acc, o, reference[i], largest.View, (int)o.Length))
                        .DefaultIfEmpty(0).Max();
                    if (!(worst <= Tolerance * scale))
                        rejected[v] = Mismatch(Read(reference), Read(outputs), scale) ?? $"largest difference {worst:G3} on the device, allowed {Tolerance * scale:G3}";
                }
                catch (Exception e) when (e is not OutOfMemoryException) { rejected[v] = e.GetType().Name + ": " + e.Message; }
            }
        }
        finally
        {
            foreach (var b in kept)
                if (pool != null) pool.Return(b);
                else b.Dispose();
        }
        // Rounds: each times every version still in play once, so a slow moment of the machine falls on all of them
        // alike; a version over three times the leader's best is not timed again.
        var ms = order.Where(v => !rejected.ContainsKey(v)).ToDictionary(v => v, _ => double.PositiveInfinity);
        var inPlay = ms.Keys.ToList();
        for (int r = 0; r < Reps; r++)
        {
            Say($"timing {inPlay.Count} versions, round {r + 1} of {Reps}");
            foreach (var v in inPlay) ms[v] = Math.Min(ms[v], time(() => run(v)));
            double lead = ms.Values.Min();
            inPlay.RemoveAll(v => !v.Equals(fallback) && ms[v] > 3 * lead);
        }
        var best = ms.MinBy(kv => kv.Value).Key;
        run(best);
        var trials = order.Select(v => rejected.TryGetValue(v, out var why)
            ? new Trial(KernelVersions.Label(v), double.NaN, why) : new Trial(KernelVersions.Label(v), ms[v], null)).ToList();
        var choice = new Choice(family, key, KernelVersions.Label(best), KernelVersions.Label(fallback), trials);
        chosen[fullKey] = (best, choice);
        cache?.Add(fullKey, choice);
        Trying?.Invoke(null);
        return best;
    }

    /// <summary>8 for "v8.hoisted".</summary>
    static int? Number(string label) => label.Length > 1 && label[0] == 'v' && int.TryParse(label[1..].Split('.')[0], out int n) ? n : null;

    static double TimeOnce(Accelerator acc, Action run)
    {
        acc.Synchronize();
        var clock = Stopwatch.StartNew();
        run();
        acc.Synchronize();
        return clock.Elapsed.TotalMilliseconds;
    }

    /// <summary>The outputs one after another, on the host.</summary>
    float[] Read(ArrayView<float>[] views)
    {
        HostReads++;
        var host = new float[views.Sum(v => v.Length)];
        long at = 0;
        foreach (var v in views)
        {
            v.CopyToCPU(acc.DefaultStream, host.AsSpan((int)at, (int)v.Length));
            at += v.Length;
        }
        acc.DefaultStream.Synchronize();
        return host;
    }

    /// <summary>Why a candidate's output is not the default's, or null when it is within Tolerance.</summary>
    static string? Mismatch(float[] reference, float[] candidate, double scale)
    {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < reference.Length; i++)
        {
            if (!float.IsFinite(candidate[i])) return $"output {i} is {candidate[i]} where the default gives {reference[i]}";
            double diff = Math.Abs((double)candidate[i] - reference[i]);
            if (diff > worst) (worst, at) = (diff, i);
        }
        return worst > Tolerance * scale
            ? $"output {at} is {candidate[at]} where the default gives {reference[at]} (largest difference {worst:G3}, allowed {Tolerance * scale:G3})"
            : null;
    }

    /// <summary>One line per tuned shape: the choice, its time against the default's, and the rejections.</summary>
    public IEnumerable<string> Summary() => Choices.Select(c =>
    {
        string others = string.Join(", ", c.Trials.Where(t => t.Version != c.Version && t.Version != c.Default)
            .Select(t => t.Rejected is { } why ? $"{t.Version} rejected ({why})" : $"{t.Version} {t.Ms:F3} ms"));
        return $"{c.Family} {c.Key}: {c.Version} {c.Ms:F3} ms (default {c.Default} {c.DefaultMs:F3} ms)" + (others.Length > 0 ? "; " + others : "") +
               (c.Cached ? " [from the tuning cache]" : "");
    });
}

/// <summary>The Autotuner's choices kept in a JSON file per device, so that a later process (the next kd sample, a
/// resumed training run) uses them without trying every version again, and chooses what the earlier one chose. Choices
/// hold only for the kernels they were timed with: the file records the kernel assembly's build id, and a file from
/// another build is ignored (and overwritten). A file that cannot be read is reported and ignored: it is only a cache.
/// KD_TUNE_CACHE names the file, or "off"; by default it is ~/.cache/kerneldiffusion/tuning/KIND-DEVICE_NAME.json
/// (XDG_CACHE_HOME where set).</summary>
public sealed class TuningCache
{
    public const string EnvironmentVariable = "KD_TUNE_CACHE";

    /// <summary>The build the choices belong to: the kernels assembly's module id (a deterministic build of the same
    /// source gives the same id).</summary>
    public static string KernelsBuild => typeof(Kernels.Conv2d).Assembly.ManifestModule.ModuleVersionId.ToString();

    public string Path { get; }
    readonly string build;
    readonly Dictionary<string, Autotuner.Choice> choices = new();
    bool saveFailed;

    public TuningCache(string path, string? build = null)
    {
        Path = path;
        this.build = build ?? KernelsBuild;
        if (!File.Exists(path)) return;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not a JSON object");
            if ((string?)root["kernels_build"] != this.build) return;   // timed with other kernels
            foreach (var (key, node) in root["choices"] as JsonObject ?? throw new JsonException("no \"choices\" object"))
            {
                var c = node as JsonObject ?? throw new JsonException($"choice '{key}' is not an object");
                string version = (string?)c["version"] ?? throw new JsonException($"choice '{key}' has no version");
                string fallback = (string?)c["default"] ?? version;
                choices[key] = new Autotuner.Choice("", key, version, fallback,
                    [new(version, (double?)c["ms"] ?? double.NaN, null), new(fallback, (double?)c["default_ms"] ?? double.NaN, null)]);
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or InvalidOperationException or FormatException)
        {
            choices.Clear();
            Console.Error.WriteLine($"kd: tuning cache '{path}' cannot be read ({e.Message}): tuning again; the file will be rewritten");
        }
    }

    /// <summary>The file KD_TUNE_CACHE names for this device, or null when it says off.</summary>
    public static string? PathFor(DeviceInfo device)
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (env is { Length: > 0 }) return env.Trim().Equals("off", StringComparison.OrdinalIgnoreCase) ? null : env.Trim();
        string root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        string name = new((device.Kind + "-" + device.Name).Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-' ? ch : '_').ToArray());
        return System.IO.Path.Combine(root, "kerneldiffusion", "tuning", name + ".json");
    }

    public Autotuner.Choice? Find(string key) => choices.GetValueOrDefault(key);

    /// <summary>Keeps a new choice and rewrites the file (atomically); a file that cannot be written is reported once.</summary>
    public void Add(string key, Autotuner.Choice c)
    {
        choices[key] = c;
        if (saveFailed) return;
        static double? Ms(double v) => double.IsFinite(v) ? Math.Round(v, 6) : null;
        var all = new JsonObject();
        foreach (var (k, v) in choices)
            all[k] = new JsonObject { ["version"] = v.Version, ["default"] = v.Default, ["ms"] = Ms(v.Ms), ["default_ms"] = Ms(v.DefaultMs) };
        var root = new JsonObject { ["format"] = 1, ["kernels_build"] = build, ["choices"] = all };
        try { AtomicFile.WriteAllText(Path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true })); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            saveFailed = true;
            Console.Error.WriteLine($"kd: tuning cache '{Path}' cannot be written ({e.Message}): choices are kept for this process only");
        }
    }
}
