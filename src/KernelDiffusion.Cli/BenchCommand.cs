using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using KernelDiffusion.Benchmarks;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd bench</c>: bench/cases.json's kernels (each version) and whole-model steps on one device, with time,
/// GB/s, TFLOP/s and the fraction of the roofline floor from the card's measured copy bandwidth and FMA rate.
/// bench/torch_reference.py times the same cases with PyTorch; bench/join.py makes the ratio table.</summary>
static class BenchCommand
{
    public static Command Create()
    {
        var device = Common.DeviceOption();
        var cases = new Option<string?>("--cases") { Description = "the case file (default: bench/cases.json, looked for from the current folder upwards)" };
        var kernels = new Option<string[]>("--kernels") { Description = "only cases whose name contains one of these texts (kernels and steps)", AllowMultipleArgumentsPerToken = true };
        var noSteps = new Option<bool>("--no-steps") { Description = "skip the whole-model steps" };
        var noKernels = new Option<bool>("--no-kernels") { Description = "skip the kernel cases" };
        var defaults = new Option<bool>("--default-only") { Description = "time only each family's default version" };
        var quick = new Option<bool>("--quick") { Description = "the cases' small 'quick' shapes (a smoke run on the CPU accelerator)" };
        var budget = new Option<double>("--budget-ms") { Description = "time spent repeating each case, after its warm-up", DefaultValueFactory = _ => 300 };
        var outDir = new Option<string>("--out") { Description = "folder for bench.md and bench.json", DefaultValueFactory = _ => "out/bench" };
        var skip = new Option<string[]>("--skip-versions")
        {
            Description = "versions not to time, as family=vN (gemm, conv, groupnorm, attention, reduce, elementwise), e.g. gemm=v3 conv=v1; a family's default is timed anyway",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("bench", "Time every kernel version and whole-model step of bench/cases.json: ms, GB/s, TFLOP/s, roofline fraction, launches.");
        foreach (var o in new Option[] { device, cases, kernels, noSteps, noKernels, defaults, quick, budget, outDir, skip }) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() => Run(r.GetValue(device), r.GetValue(cases), r.GetValue(kernels) ?? [], r.GetValue(noSteps), r.GetValue(noKernels),
            r.GetValue(defaults), r.GetValue(quick), r.GetValue(budget), r.GetValue(outDir)!, r.GetValue(skip) ?? [])));
        return cmd;
    }

    static string FindCases()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
        {
            var p = Path.Combine(dir.FullName, "bench", "cases.json");
            if (File.Exists(p)) return p;
        }
        throw new KdException("bench: no bench/cases.json in this folder or above it: run from the repository or pass --cases FILE");
    }

    static int Run(string? spec, string? casesPath, string[] only, bool noSteps, bool noKernels, bool defaultOnly, bool quick, double budgetMs, string outDir,
        string[] skipVersions)
    {
        var skipped = KernelVersions.Parse(string.Join(",", skipVersions), "--skip-versions")
            .Select(x => $"{x.Family}=v{Convert.ToInt32(x.Version)}").ToHashSet();
        casesPath ??= FindCases();
        var cases = BenchCases.Load(casesPath, quick);
        string root = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(casesPath)))!;
        bool Wanted(System.Text.Json.Nodes.JsonObject c) => only.Length == 0 || only.Any(o => ((string)c["name"]!).Contains(o, StringComparison.OrdinalIgnoreCase));
        var kernelCases = noKernels ? [] : cases.Kernels.Where(Wanted).ToList();
        var stepCases = noSteps ? [] : cases.Steps.Where(Wanted).ToList();
        if (kernelCases.Count + stepCases.Count == 0) throw new KdException($"bench: no case of {casesPath} is selected");

        using var d = ComputeDevice.Open(spec, profiling: true);
        using var timer = new BenchTimer(d) { BudgetMs = budgetMs };
        AnsiConsole.MarkupLine($"benchmarking on [green]{Markup.Escape(d.Label)}[/] ({Markup.Escape(d.Info.Name)}){(quick ? ", quick shapes" : "")}");
        var peak = timer.MeasurePeak();
        AnsiConsole.MarkupLine($"measured ceilings: copy {peak.CopyGBs:F1} GB/s (read + write), fp32 FMA {peak.Fp32TFlops:F3} TFLOP/s, {Tf32Text(peak)}; " +
                               (timer.ColdCache ? "each run timed alone between stream markers after clearing the L2 cache" : "runs timed in host loops (warm cache)"));
        if (KernelDiffusion.Kernels.Launch.IsCpu(d.Accelerator) && Environment.GetEnvironmentVariable("DOTNET_TieredCompilation") != "0")
            AnsiConsole.MarkupLine("[grey]on the CPU accelerator the runtime's background JIT takes a core from the kernels while code warms up, " +
                                   "so the first cases can read up to 2x slow: DOTNET_TieredCompilation=0 gives steadier figures (bench/NOTES.md)[/]");
        var runner = new BenchRunner(d, peak, timer) { AllVersions = !defaultOnly, SkipVersions = skipped };
        var results = new List<BenchResult>();
        var started = DateTime.UtcNow;
        AnsiConsole.Progress().AutoClear(true).Start(ctx =>
        {
            var task = ctx.AddTask("cases", maxValue: kernelCases.Count + stepCases.Count);
            Common.ShowTuning(d, task);
            foreach (var c in kernelCases)
            {
                task.Description = Markup.Escape((string)c["name"]!);
                foreach (var r in runner.Kernel(c)) { results.Add(r); Say(r); }
                task.Increment(1);
                Write(outDir, d, peak, results, quick, (DateTime.UtcNow - started).TotalSeconds, timer.ColdCache);   // a run cut short keeps what it measured
            }
            foreach (var c in stepCases)
            {
                task.Description = Markup.Escape((string)c["name"]!);
                var r = runner.Step(c, root);
                results.Add(r);
                Say(r);
                task.Increment(1);
                Write(outDir, d, peak, results, quick, (DateTime.UtcNow - started).TotalSeconds, timer.ColdCache);
            }
        });
        double seconds = (DateTime.UtcNow - started).TotalSeconds;
        var table = new Table().AddColumns("case", "version", "ms", "GB/s", "TFLOP/s", "floor ms", "roofline", "launches");
        foreach (var r in results)
            table.AddRow(Markup.Escape(r.Name), (r.IsDefault ? "[green]" : "[grey]") + Markup.Escape(r.Version) + "[/]", F(r.Ms, "F3"),
                r.Cost.Bytes > 0 ? F(r.GBs, "F1") : "-", r.Cost.Flops > 0 ? F(r.TFlops, "F3") : "-", r.FloorMs > 0 ? F(r.FloorMs, "F3") : "-",
                r.FloorMs > 0 ? F(r.Roofline, "P1") : "-", r.Launches.ToString());
        AnsiConsole.Write(table);
        Write(outDir, d, peak, results, quick, seconds, timer.ColdCache);
        int errors = results.Count(r => r.Error != null);
        AnsiConsole.MarkupLine($"{results.Count} timings, {errors} errors, in {seconds:F0} s; wrote {Markup.Escape(Path.Combine(outDir, "bench.md"))} and bench.json");
        return errors == 0 ? 0 : 1;
    }

    static void Say(BenchResult r) => AnsiConsole.MarkupLine(r.Error != null
        ? $"[red]error[/] {Markup.Escape($"{r.Name} {r.Version}: {r.Error}")}"
        : Markup.Escape($"{r.Name} {r.Version}: {r.Ms:F3} ms{(r.FloorMs > 0 ? $", {r.Roofline:P1} of the roofline" : "")}, {r.Launches} launches" +
                        (r.PoolMiB is { } mib ? $", {mib:F0} MiB of device memory" : "") + HostText(r, ", ")));

    static string Note(BenchResult r) => (r.Error ?? (r.PoolMiB is { } mib ? $"{mib:F0} MiB of device memory{HostText(r, "; ")}" : "")).Replace("|", "/");

    /// <summary>A step's host time issuing work (not waiting for the device), against its device time, and the garbage
    /// collector's pauses within it.</summary>
    static string HostText(BenchResult r, string separator) => r.HostMs is { } host && double.IsFinite(host)
        ? $"{separator}the host {host:F1} ms issuing work ({host / r.Ms:P0} of the device time)" +
          (r.GcPauseMs is { } gc && r.GcCollections is { } n ? $", {gc:F1} ms of it in GC pauses ({n:F1} collections)" : "") : "";

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    static void Write(string outDir, ComputeDevice d, Peak peak, List<BenchResult> results, bool quick, double seconds, bool coldCache)
    {
        var md = new StringBuilder();
        md.AppendLine($"# kd bench on {d.Label} ({d.Info.Name})\n");
        md.AppendLine($"{DateTime.UtcNow:u}; {seconds:F0} s{(quick ? "; quick shapes" : "")}. Measured ceilings: copy {peak.CopyGBs:F1} GB/s (bytes read + written), " +
                      $"fp32 FMA {peak.Fp32TFlops:F3} TFLOP/s, {Tf32Text(peak)}. Floor = max(FLOPs / FMA rate, bytes / copy bandwidth), " +
                      "with the tf32 mma rate for tf32 versions where it was measured; roofline = floor / time. " +
                      (coldCache ? "Each run is timed alone between stream markers after a 256 MiB memset clears the L2 cache (as triton's do_bench). "
                                 : "Runs are timed in host loops with a warm cache. ") +
                      "Default versions in bold. Steps: training step (forward, loss, backward, clipping, AdamW, EMA); CFG sampling step " +
                      "(one forward of 2N and the fused step, averaged over 4 steps); classifier guidance gradient (forward and backward to x). " +
                      "Forward + backward cases write their inputs' gradients anew in each run, as PyTorch's reference, which sets " +
                      "them to None between runs." +
                      (coldCache ? " A step's note gives the host's time per step spent issuing work, not waiting for the device: near the " +
                                   "device time, the step is bound by the host (launch overhead, host work between launches)." : "") + "\n");
        md.AppendLine("| case | version | ms | GB/s | TFLOP/s | floor ms | roofline | launches | note |\n|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            string v = r.IsDefault ? $"**{r.Version}**" : r.Version;
            md.AppendLine($"| {r.Name} | {v} | {F(r.Ms, "F3")} | {(r.Cost.Bytes > 0 ? F(r.GBs, "F1") : "-")} | {(r.Cost.Flops > 0 ? F(r.TFlops, "F3") : "-")} | " +
                          $"{(r.FloorMs > 0 ? F(r.FloorMs, "F3") : "-")} | {(r.FloorMs > 0 ? F(r.Roofline, "P1") : "-")} | {r.Launches} | {Note(r)} |");
        }
        foreach (var r in results.Where(r => r.LaunchesByKernel is { Count: > 0 }))
        {
            // Where a step's launches go: the fusion candidates.
            md.AppendLine($"\n{r.Name}: {r.Launches} launches per step, by kernel: " +
                          string.Join(", ", r.LaunchesByKernel!.Select(kv => $"{kv.Key} {kv.Value}")) + ".");
        }
        var tuned = d.Versions.Auto.Count > 0 ? d.Tuner.Summary().ToList() : [];
        if (tuned.Count > 0)
        {
            // KD_KERNELS=auto: the steps ran with these per-shape choices (the kernel cases time each version by name).
            md.AppendLine($"\nThe steps' kernel versions, tuned per shape ({KernelVersions.EnvironmentVariable}={d.Versions}):\n");
            foreach (var line in tuned) md.AppendLine($"- {line}");
        }
        AtomicFile.WriteAllText(Path.Combine(outDir, "bench.md"), md.ToString());
        double? Num(double v) => double.IsFinite(v) ? v : null;
        var json = new
        {
            device = d.Info.Name, device_id = d.Info.Id, quick, seconds, timing = coldCache ? "cold L2, stream markers" : "host loop, warm cache",
            peak = new { copy_gbs = peak.CopyGBs, fp32_tflops = peak.Fp32TFlops, tf32_tflops = Num(peak.Tf32TFlops) },
            autotune = tuned,
            results = results.Select(r => new
            {
                name = r.Name, version = r.Version, @default = r.IsDefault, ms = Num(r.Ms), flops = r.Cost.Flops, bytes = r.Cost.Bytes,
                gbs = r.Cost.Bytes > 0 ? Num(r.GBs) : null, tflops = r.Cost.Flops > 0 ? Num(r.TFlops) : null,
                floor_ms = r.FloorMs > 0 ? Num(r.FloorMs) : null, roofline = r.FloorMs > 0 ? Num(r.Roofline) : null, launches = r.Launches, launches_by_kernel = r.LaunchesByKernel, pool_mib = r.PoolMiB, host_ms = r.HostMs is { } h ? Num(h) : null, gc_pause_ms = r.GcPauseMs is { } gp ? Num(gp) : null,
                gc_collections = r.GcCollections is { } gn ? Num(gn) : null, error = r.Error,
            }),
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "bench.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    }

    static string Tf32Text(Peak peak) => double.IsFinite(peak.Tf32TFlops)
        ? $"tf32 mma {peak.Tf32TFlops:F3} TFLOP/s"
        : "tf32 mma not measured (no 128-thread groups of 32-lane warps here)";
}
