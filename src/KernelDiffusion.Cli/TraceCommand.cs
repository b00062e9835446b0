using System.CommandLine;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd trace</c>: one model on given inputs; writes out, every block's output, and with --grad the
/// gradients of sum(out * g).</summary>
static class TraceCommand
{
    public static Command Create()
    {
        var device = Common.DeviceOption();
        var checkpoint = new Option<string>("--checkpoint") { Description = "model weights (.safetensors)", Required = true };
        var config = new Option<string?>("--config") { Description = "model configuration JSON (when the checkpoint carries none, e.g. a converted guided-diffusion file)" };
        var input = new Option<string>("--input") { Description = "inputs: x [N,C,H,W], t [N], y [N] (class-conditional UNet), g (with --grad)", Required = true };
        var output = new Option<string>("--output") { Description = "where to write out, the block outputs and gradients (.safetensors)", Required = true };
        var grad = new Option<bool>("--grad") { Description = "also write grad.x and grad.<parameter> of sum(out * g)" };
        var cmd = new Command("trace", "Run one model on given inputs and write its output and every block's output (and gradients with --grad).");
        foreach (var o in new Option[] { checkpoint, config, input, output, grad, device }) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            using var d = ComputeDevice.Open(r.GetValue(device));
            using var model = ModelCheckpoint.Load(d, r.GetValue(checkpoint)!, r.GetValue(config));
            string inPath = r.GetValue(input)!, outPath = r.GetValue(output)!;
            var started = DateTime.UtcNow;
            var tensors = ModelTrace.Run(d, model, SafeTensorsFile.Read(inPath), inPath, r.GetValue(grad));
            SafeTensorsFile.Write(outPath, tensors, new Dictionary<string, string>
            {
                ["device"] = d.Info.Id, [ModelCheckpoint.ConfigKey] = model.Config.ToJson(), ["checkpoint"] = Path.GetFileName(r.GetValue(checkpoint)!),
            });
            AnsiConsole.MarkupLine($"traced {tensors.Count} tensors on [green]{d.Info.Id}[/] in {(DateTime.UtcNow - started).TotalSeconds:F1} s -> {Markup.Escape(outPath)}");
            return 0;
        }));
        return cmd;
    }
}
