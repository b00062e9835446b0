using System.CommandLine;
using KernelDiffusion.Cli;
using KernelDiffusion.Runtime;
using Spectre.Console;

// Logs (the GPU machine's output files) get the full table width, not a terminal's 80 columns.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;

var root = new RootCommand("kd: KernelDiffusion, a diffusion engine whose every tensor operation is an ILGPU kernel of its own.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(InitCommand.Create());
root.Subcommands.Add(TraceCommand.Create());
root.Subcommands.Add(TrainCommand.Create("unet"));
root.Subcommands.Add(TrainCommand.Create("classifier"));
root.Subcommands.Add(SampleCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(EvalCommand.CreateClassifierAccuracy());
root.Subcommands.Add(SweepCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(CompareCommands.TraceInputs());
root.Subcommands.Add(CompareCommands.Compare());
return root.Parse(args).Invoke();

namespace KernelDiffusion.Cli
{
    static class Common
    {
        /// <summary>How a profile's ops were timed, for its table's heading.</summary>
        public static string ProfileClock(OpProfiler p) => p.StreamMarkers
            ? "timed on the device between stream markers, without synchronising; host ms: the host's time from the op's mark to the next"
            : "per-op timing synchronises after every op";

        public static Option<string?> DeviceOption() => new("--device")
        {
            Description = "cuda, opencl or cpu, optionally :N (default: KD_DEVICE, else the first of cuda, opencl, cpu)",
        };

        /// <summary>Runs a command body; a KdException (bad input) prints its message, not a stack trace.</summary>
        public static int Guard(Func<int> body)
        {
            try { return body(); }
            catch (KdException e)
            {
                AnsiConsole.MarkupLine($"[red]kd: error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        }

        /// <summary>Shows on a progress task what the Autotuner is trying, then puts the task's text back.</summary>
        public static void ShowTuning(ComputeDevice d, ProgressTask task)
        {
            if (d.Versions.Auto.Count == 0) return;   // no tuner, no tuning cache read
            string? before = null;
            d.Tuner.Trying = what =>
            {
                if (what == null)
                {
                    if (before != null) task.Description = before;
                    before = null;
                    return;
                }
                before ??= task.Description;
                task.Description = Markup.Escape(what);
            };
        }

        /// <summary>Prints what the Autotuner chose per shape (KD_KERNELS=auto), one line each; nothing when it chose nothing.</summary>
        public static void ReportTuning(ComputeDevice d)
        {
            if (d.Versions.Auto.Count == 0) return;
            var choices = d.Tuner.Choices;
            if (choices.Count == 0) return;
            var lines = d.Tuner.Summary().ToList();
            int cached = choices.Count(c => c.Cached), kept = choices.Count(c => c.Version == c.Default);
            string file = TuningCache.PathFor(d.Info) is { } path ? $"; choices kept in {path}" : $"; {TuningCache.EnvironmentVariable}=off";
            AnsiConsole.MarkupLine(Markup.Escape($"tuned {choices.Count} shapes ({KernelVersions.EnvironmentVariable}={d.Versions}), " +
                                                 $"{cached} read from the tuning cache{file}; {kept} kept the default" +
                                                 (kept < choices.Count ? ", these did not:" : "")));
            for (int i = 0; i < choices.Count; i++)
                if (choices[i].Version != choices[i].Default) AnsiConsole.MarkupLine($"  [grey]{Markup.Escape(lines[i])}[/]");
            int rejected = choices.Sum(c => c.Trials.Count(t => t.Rejected != null));
            if (rejected > 0)
                AnsiConsole.MarkupLine(Markup.Escape($"  {rejected} trials were rejected (outputs unlike the default's, or errors): ") +
                                       string.Join("; ", lines.Where(l => l.Contains(" rejected (")).Select(Markup.Escape)));
        }

        public static string Bytes(long b) => b switch
        {
            >= 1L << 40 => "unbounded",
            >= 1L << 30 => $"{b / (double)(1L << 30):F1} GiB",
            >= 1L << 20 => $"{b / (double)(1L << 20):F1} MiB",
            >= 1L << 10 => $"{b / 1024.0:F0} KiB",
            _ => $"{b} B",
        };
    }
}
