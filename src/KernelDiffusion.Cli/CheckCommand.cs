using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using KernelDiffusion.Checks;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd check</c>: every kernel against its float64 reference on the chosen device, as a table, a markdown
/// file and a JSON file. This is how a GPU, where dotnet test cannot run, proves correctness.</summary>
static class CheckCommand
{
    public static Command Create()
    {
        var device = Common.DeviceOption();
        var outDir = new Option<string>("--out") { Description = "folder for check.md and check.json", DefaultValueFactory = _ => "out/check" };
        var filter = new Option<string?>("--filter") { Description = "only kernels whose name contains this text" };
        var exclude = new Option<string[]>("--exclude")
        {
            Description = "leave out kernels whose name contains this text (repeatable): e.g. a kernel on its first GPU run, checked in a process of its own so that a fault cannot stop the others",
            AllowMultipleArgumentsPerToken = false,
        };
        var models = new Option<string[]>("--model")
        {
            Description = "also check a whole model of this configuration (JSON; repeatable) against a float64 replay of its graph: forward and sampled gradients",
            AllowMultipleArgumentsPerToken = false,
        };
        var modelBatch = new Option<int>("--model-batch") { Description = "batch size of the model checks (at least 2 catches ops that mix samples up)", DefaultValueFactory = _ => 2 };
        var compile = new Option<string?>("--compile")
        {
            Description = "instead of running kernels, compile every kernel for this target (ptx or opencl) with ILGPU's compiler, no device needed; the code goes to <out>/<target>/. "
                + "For ptx, ptxas (KD_PTXAS, .tools/cuda from scripts/get-ptxas.sh, or PATH) also assembles each kernel for sm_80 when found, and CUDA 12's (KD_PTXAS_SM90 or .tools/cuda12) the kernels retargeted to sm_90 (GEMM v22, v24): a kernel it rejects fails; registers and spills are shown, spills are warned about but do not fail",
        };
        var cmd = new Command("check", "Check every kernel against its float64 reference (fresh random inputs, poisoned outputs, finite-difference backward).");
        cmd.Options.Add(device);
        cmd.Options.Add(outDir);
        cmd.Options.Add(filter);
        cmd.Options.Add(exclude);
        cmd.Options.Add(models);
        cmd.Options.Add(modelBatch);
        cmd.Options.Add(compile);
        cmd.SetAction(r => Common.Guard(() => r.GetValue(compile) is { } target
            ? Compile(target, r.GetValue(outDir)!, r.GetValue(filter), r.GetValue(exclude) ?? [])
            : Run(r.GetValue(device), r.GetValue(outDir)!, r.GetValue(filter), r.GetValue(exclude) ?? [], r.GetValue(models) ?? [], r.GetValue(modelBatch))));
        return cmd;
    }

    static int Run(string? spec, string outDir, string? filter, string[] exclude, string[] models, int modelBatch)
    {
        var configs = models.Select(m => (Path: m, Config: ModelConfig.FromFile(m))).ToList();   // refuse bad files before any work
        using var d = ComputeDevice.Open(spec);
        AnsiConsole.MarkupLine($"checking on [green]{Markup.Escape(d.Label)}[/] ({Markup.Escape(d.Info.Name)})");
        var results = new List<CheckResult>();
        var started = DateTime.UtcNow;
        AnsiConsole.Progress().AutoClear(true).Start(ctx =>
        {
            int total = KernelChecks.Names.Count(n => KernelChecks.Selected(n.Split(' ')[0], filter, exclude));
            var task = ctx.AddTask("kernels", maxValue: Math.Max(1, total + configs.Count));
            foreach (var r in KernelChecks.RunAll(d, filter, exclude))
            {
                results.Add(r);
                task.Description = Markup.Escape($"{r.Kernel} {r.Shape}");
                task.Increment(1);
                // Said at once, so a run cut short (a GPU machine's time limit) still tells what failed.
                if (!r.Passed) AnsiConsole.MarkupLine($"[red]FAIL[/] {Markup.Escape($"{r.Kernel} {r.Shape}: error {Error(r.RelError)} > {r.Tolerance:G2} {r.Note}")}");
            }
            if (configs.Count > 0) Write(d, results, outDir, (DateTime.UtcNow - started).TotalSeconds);
            foreach (var (path, config) in configs)
            {
                string name = Path.GetFileNameWithoutExtension(path), shape = $"batch {modelBatch}, {config.ImageSize}x{config.ImageSize}";
                task.Description = Markup.Escape($"model {name} (float64 replay)");
                var m = ModelChecks.Run(d, config, modelBatch);
                string note = $"{m.Ops} ops replayed in float64, {m.Sampled} gradients sampled, {m.Seconds:F0} s; worst op {m.WorstOp}";
                results.Add(new CheckResult($"model.{name}.forward", shape, m.ForwardError, 1e-5, m.ForwardError <= 1e-5, note));
                results.Add(new CheckResult($"model.{name}.gradients", shape, m.GradientError, 1e-4, m.GradientError <= 1e-4, note));
                task.Increment(1);
            }
        });
        if (results.Count == 0) throw new KdException($"check: no kernel name contains '{filter}'{Excluding(exclude)}");
        var seconds = (DateTime.UtcNow - started).TotalSeconds;

        var table = new Table().AddColumns("kernel", "shape", "rel. error", "tolerance", "result");
        foreach (var r in results)
            table.AddRow(Markup.Escape(r.Kernel), Markup.Escape(r.Shape), Error(r.RelError), r.Tolerance.ToString("G2"), r.Passed ? "[green]pass[/]" : $"[red]FAIL[/] {Markup.Escape(r.Note)}");
        AnsiConsole.Write(table);
        int failed = results.Count(r => !r.Passed);
        AnsiConsole.MarkupLine($"{results.Count - failed} passed, {failed} failed on {d.Info.Id} in {seconds:F1} s");

        Write(d, results, outDir, seconds);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(Path.Combine(outDir, "check.md"))} and check.json");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>check.md and check.json (atomically; also after the kernels, before the slower model checks).</summary>
    static void Write(ComputeDevice d, List<CheckResult> results, string outDir, double seconds)
    {
        int failed = results.Count(r => !r.Passed);
        var md = new StringBuilder();
        md.AppendLine($"# kd check on {d.Label} ({d.Info.Name})\n");
        md.AppendLine($"{DateTime.UtcNow:u}; {results.Count - failed} passed, {failed} failed; {seconds:F1} s.\n");
        md.AppendLine("| kernel | shape | relative error | tolerance | result | note |\n|---|---|---|---|---|---|");
        foreach (var r in results)
            md.AppendLine($"| {r.Kernel} | {r.Shape} | {Error(r.RelError)} | {r.Tolerance:G2} | {(r.Passed ? "pass" : "FAIL")} | {r.Note.Replace("|", "/")} |");
        AtomicFile.WriteAllText(Path.Combine(outDir, "check.md"), md.ToString());
        var json = JsonSerializer.Serialize(new { device = d.Info, passed = results.Count - failed, failed, seconds, results },
            new JsonSerializerOptions { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals });
        AtomicFile.WriteAllText(Path.Combine(outDir, "check.json"), json);
    }

    /// <summary><c>kd check --compile ptx|opencl</c>: see OfflineCompile; for ptx also Ptxas when one is found.</summary>
    static string Excluding(string[] exclude) => exclude.Length > 0 ? $" but none of '{string.Join("', '", exclude)}'" : "";

    static int Compile(string target, string outDir, string? filter, string[] exclude)
    {
        var started = DateTime.UtcNow;
        target = target.Trim().ToLowerInvariant();
        var dump = Path.Combine(outDir, target);
        var results = OfflineCompile.CompileAll(target, dump, filter, exclude);
        if (results.Count == 0) throw new KdException($"check: no kernel name contains '{filter}'{Excluding(exclude)}");
        // Each kernel's PTX goes to the ptxas of its target (sm_80, or sm_90 where PtxTarget retargeted it).
        var tools = results.Select(r => target == "ptx" && r.Code != null ? Ptxas.FindFor(r.Code) : null).ToList();
        bool assembling = tools.Any(t => t != null);
        foreach (var how in results.Where((r, i) => target == "ptx" && r.Code != null && tools[i] == null).Select(r => Ptxas.HowToGetFor(r.Code!)).Distinct())
            AnsiConsole.MarkupLine($"[yellow]ptxas not found[/]: some PTX is compiled but not assembled; {Markup.Escape(how)}");
        var assembled = results.Select((r, i) => tools[i] != null ? Ptxas.Assemble(tools[i]!, r.Code!, r.Kernel) : null).ToList();

        var table = new Table().AddColumns("kernel", "result");
        if (assembling) table.AddColumns("registers", "spill stores / loads", "stack frame");
        table.AddColumn("message");
        for (int i = 0; i < results.Count; i++)
        {
            var (r, a) = (results[i], assembled[i]);
            bool ok = r.Ok && a?.Ok != false;
            var row = new List<string> { Markup.Escape(r.Kernel), ok ? "[green]ok[/]" : "[red]FAIL[/]" };
            if (assembling)
                row.AddRange(a?.Parsed == true
                    ? [a.Registers!.Value.ToString(), a.Spills ? $"[yellow]{a.SpillStoreBytes} B / {a.SpillLoadBytes} B[/]" : "0 B / 0 B", $"{a.StackFrameBytes} B"]
                    : ["", "", ""]);
            row.Add(a == null || a.Parsed ? Markup.Escape(r.Message)     // the compiler's
                : a.Ok ? $"[yellow]{Markup.Escape(a.Message)}[/]"           // ptxas' report not understood
                : Markup.Escape(a.Message));                                // ptxas' rejection
            table.AddRow(row.ToArray());
        }
        AnsiConsole.Write(table);

        // Markup: target is ptx or opencl (CompileAll refused anything else).
        int failed = results.Count(r => !r.Ok), rejected = assembled.Count(a => a?.Ok == false);
        string summary = $"{results.Count - failed} compiled, {failed} failed for {target}";
        if (assembling)
        {
            int spilling = assembled.Count(a => a?.Spills == true), unread = assembled.Count(a => a?.Ok == true && !a.Parsed);
            var targets = string.Join(", ", results.Where(r => r.Code != null).GroupBy(r => Ptxas.TargetOf(r.Code!)).Select(g => $"{g.Key}: {g.Count()}"));
            summary += $"; ptxas ({targets}) assembled {assembled.Count(a => a?.Ok == true)}, rejected {rejected}"
                + (spilling > 0 ? $", [yellow]{spilling} spill (a warning, not a failure)[/]" : ", no spills")
                + (unread > 0 ? $", [yellow]{unread} reports not understood[/]" : "");
        }
        AnsiConsole.MarkupLine($"{summary} in {(DateTime.UtcNow - started).TotalSeconds:F1} s; code in {Markup.Escape(dump)}");
        return failed == 0 && rejected == 0 ? 0 : 1;
    }

    static string Error(double e) => double.IsNaN(e) ? "error" : e.ToString("E2");
}
