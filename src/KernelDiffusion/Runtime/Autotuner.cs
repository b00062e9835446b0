using System.Diagnostics;
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
/// version has no other effect; the chosen one runs last, leaving its own result.</remarks>
public sealed class Autotuner(Accelerator acc, Func<Action, double>? time = null)
{
    /// <summary>How far (relative to the default output's largest magnitude) a candidate may land from the default: far
    /// above fp32 reordering error (about 1e-6 here), far below what a wrong index gives.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Timed runs per candidate after its first (which compiles it and is checked); fewer for a candidate
    /// already over three times the best.</summary>
    public const int Reps = 3;

    /// <summary>One version tried at a shape: its best time, or why it was rejected.</summary>
    public sealed record Trial(string Version, double Ms, string? Rejected);

    /// <summary>What was chosen at one shape, and every trial.</summary>
    public sealed record Choice(string Family, string Key, string Version, string Default, IReadOnlyList<Trial> Trials)
    {
        public double Ms => Trials.First(t => t.Version == Version).Ms;
        public double DefaultMs => Trials.First(t => t.Version == Default).Ms;
    }

    readonly Func<Action, double> time = time ?? (run => TimeOnce(acc, run));
    readonly Dictionary<string, (Enum Version, Choice Choice)> chosen = new();

    /// <summary>Every shape tuned so far, in the order they were met.</summary>
    public IReadOnlyList<Choice> Choices => chosen.Values.Select(c => c.Choice).ToList();

    /// <summary>The version to run at <paramref name="key"/> (a family's shape, as it names it). The first time, tunes:
    /// <paramref name="run"/> runs a version, overwriting <paramref name="outputs"/> (all compared); afterwards they hold
    /// the chosen version's results. When the default's own output is not finite, nothing is chosen (there is nothing to compare
    /// against): the default's result stays and the next call tries again.</summary>
    public TV Choose<TV>(string family, string key, TV fallback, IEnumerable<TV> candidates, Action<TV> run, params ArrayView<float>[] outputs)
        where TV : struct, Enum
    {
        string fullKey = family + " " + key;
        if (chosen.TryGetValue(fullKey, out var known)) { run((TV)known.Version); return (TV)known.Version; }

        run(fallback);   // compiles it; its output is the reference
        acc.Synchronize();
        var reference = Read(outputs);
        if (reference.Any(v => !float.IsFinite(v))) return fallback;
        double scale = reference.Max(v => Math.Abs((double)v));
        var order = new List<TV> { fallback };
        var rejected = new Dictionary<TV, string>();
        foreach (var v in candidates.Distinct().Where(v => !v.Equals(fallback)))
        {
            order.Add(v);
            try
            {
                run(v);   // compiles it
                acc.Synchronize();
                if (Mismatch(reference, Read(outputs), scale) is { } why) rejected[v] = why;
            }
            catch (Exception e) when (e is not OutOfMemoryException) { rejected[v] = e.GetType().Name + ": " + e.Message; }
        }
        // Rounds: each times every version still in play once, so a slow moment of the machine falls on all of them
        // alike; a version over three times the leader's best is not timed again.
        var ms = order.Where(v => !rejected.ContainsKey(v)).ToDictionary(v => v, _ => double.PositiveInfinity);
        var inPlay = ms.Keys.ToList();
        for (int r = 0; r < Reps; r++)
        {
            foreach (var v in inPlay) ms[v] = Math.Min(ms[v], time(() => run(v)));
            double lead = ms.Values.Min();
            inPlay.RemoveAll(v => !v.Equals(fallback) && ms[v] > 3 * lead);
        }
        var best = ms.MinBy(kv => kv.Value).Key;
        run(best);
        var trials = order.Select(v => rejected.TryGetValue(v, out var why)
            ? new Trial(KernelVersions.Label(v), double.NaN, why) : new Trial(KernelVersions.Label(v), ms[v], null)).ToList();
        chosen[fullKey] = (best, new Choice(family, key, KernelVersions.Label(best), KernelVersions.Label(fallback), trials));
        return best;
    }

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
        return $"{c.Family} {c.Key}: {c.Version} {c.Ms:F3} ms (default {c.Default} {c.DefaultMs:F3} ms)" + (others.Length > 0 ? "; " + others : "");
    });
}
