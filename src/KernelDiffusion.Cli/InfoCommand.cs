using System.CommandLine;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd info</c>: every device ILGPU sees and the one that would be used.</summary>
static class InfoCommand
{
    public static Command Create()
    {
        var device = Common.DeviceOption();
        var cmd = new Command("info", "List the devices (kind, name, memory, warp size, group and shared-memory limits) and the one that would be used.");
        cmd.Options.Add(device);
        cmd.SetAction(r => Common.Guard(() => Run(r.GetValue(device))));
        return cmd;
    }

    static int Run(string? spec)
    {
        var (devices, chosen, error) = ComputeDevice.Describe(spec);
        var table = new Table().AddColumns("id", "kind", "name", "memory", "warp", "max group", "shared/group", "SMs", "used");
        foreach (var d in devices)
            table.AddRow(d.Id, d.Kind, Markup.Escape(d.Name), Common.Bytes(d.MemoryBytes), d.WarpSize.ToString(), d.MaxGroupSize.ToString(),
                Common.Bytes(d.MaxSharedMemoryPerGroup), d.Multiprocessors.ToString(), d.Id == chosen ? "[green]*[/]" : "");
        AnsiConsole.Write(table);
        string how = string.IsNullOrWhiteSpace(spec)
            ? Environment.GetEnvironmentVariable(ComputeDevice.EnvironmentVariable) is { Length: > 0 } env ? $"KD_DEVICE={env}" : "auto: cuda, then opencl, then cpu"
            : $"--device {spec}";
        if (error != null)
        {
            AnsiConsole.MarkupLine($"[red]kd: error:[/] {Markup.Escape(error)} ({Markup.Escape(how)})");
            return 2;
        }
        AnsiConsole.MarkupLine($"would use [green]{chosen}[/] ({Markup.Escape(how)})");
        if (Environment.GetEnvironmentVariable(KernelVersions.EnvironmentVariable) is { Length: > 0 } forced)
        {
            var versions = new KernelVersions();
            versions.Force(forced);   // a bad name is refused here, as it would be by any command
            AnsiConsole.MarkupLine($"kernel versions set by {KernelVersions.EnvironmentVariable}: {Markup.Escape(versions.ToString())}");
            if (versions.Auto.Count > 0)
            {
                var path = TuningCache.PathFor(devices.First(x => x.Id == chosen));
                AnsiConsole.MarkupLine(path == null ? $"tuning cache: none ({TuningCache.EnvironmentVariable}=off)"
                    : $"tuning cache: {Markup.Escape(path)}{(File.Exists(path) ? "" : " (not written yet)")}");
            }
        }
        return 0;
    }
}
