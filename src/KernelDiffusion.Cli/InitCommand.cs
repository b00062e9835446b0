using System.CommandLine;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd init</c>: a freshly initialised model (guided-diffusion's initialisation, seeded) as a checkpoint.</summary>
static class InitCommand
{
    public static Command Create()
    {
        var device = Common.DeviceOption();
        var config = new Option<string>("--config") { Description = "model configuration JSON (guided-diffusion's constructor names)", Required = true };
        var output = new Option<string>("--out") { Description = "checkpoint to write (.safetensors)", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "initialisation seed", DefaultValueFactory = _ => 0 };
        var randomize = new Option<bool>("--randomize-zero-layers") { Description = "draw the zero-initialised output layers at random too (for traces and checks)" };
        var cmd = new Command("init", "Write a freshly initialised UNet or classifier checkpoint.");
        foreach (var o in new Option[] { config, output, seed, randomize, device }) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            var c = ModelConfig.FromFile(r.GetValue(config)!);
            using var d = ComputeDevice.Open(r.GetValue(device));
            using DiffusionTrunk model = c.IsClassifier ? new Classifier(d, c) : new UNet(d, c);
            model.Initialize(r.GetValue(seed), randomizeConstants: r.GetValue(randomize));
            ModelCheckpoint.Save(r.GetValue(output)!, model);
            AnsiConsole.MarkupLine($"{c.Model} with {model.ParameterCount:N0} parameters -> {Markup.Escape(r.GetValue(output)!)}");
            return 0;
        }));
        return cmd;
    }
}
