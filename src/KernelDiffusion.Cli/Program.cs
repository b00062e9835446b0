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

        /// <summary>Prints what the Autotuner chose per shape (KD_KERNELS=auto), one line each; nothing when it chose nothing.</summary>
        public static void ReportTuning(ComputeDevice d)
        {
            var lines = d.Tuner.Summary().ToList();
            if (lines.Count == 0) return;
            int cached = d.Tuner.Choices.Count(c => c.Cached);
            string file = TuningCache.PathFor(d.Info) is { } path ? $"; choices kept in {path}" : $"; {TuningCache.EnvironmentVariable}=off";
            AnsiConsole.MarkupLine(Markup.Escape($"tuned {lines.Count} shapes ({KernelVersions.EnvironmentVariable}={d.Versions}), " +
                                                 $"{cached} of them read from the tuning cache{file}:"));
            foreach (var line in lines) AnsiConsole.MarkupLine($"  [grey]{Markup.Escape(line)}[/]");
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
