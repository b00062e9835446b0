using System.CommandLine;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Evaluation;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd eval</c>: FID, sFID, Inception-style score, precision, recall and accuracy of an NPZ of samples
/// against a data set's split, with an evaluation classifier as the feature network.</summary>
static class EvalCommand
{
    public const string ShippedFeatureNet = "weights/fmnist-eval-classifier.safetensors";

    /// <summary>Options kd eval and kd sweep share.</summary>
    internal sealed record Shared(Option<string> Reference, Option<string?> FeatureNet, Option<string?> Data, Option<int> Limit, Option<string> Cache)
    {
        public static Shared Create() => new(
            new Option<string>("--reference") { Description = "test | train | FILE.npz (uint8 NHWC images)", DefaultValueFactory = _ => "test" },
            new Option<string?>("--feature-net") { Description = $"evaluation classifier (kd train-classifier --clean); default {ShippedFeatureNet}" },
            new Option<string?>("--data") { Description = "data set of --reference test|train (default: the one the feature network was trained on)" },
            new Option<int>("--reference-limit") { Description = "use only the first N reference images (0: all)" },
            new Option<string>("--cache") { Description = "folder for cached reference features", DefaultValueFactory = _ => "out/eval-cache" });

        public IEnumerable<Option> All => [Reference, FeatureNet, Data, Limit, Cache];
    }

    /// <summary>The feature network and the reference features (cached), with a line on the console about each.</summary>
    internal static (Classifier Net, FeatureSet Reference, string ReferenceName) Prepare(ComputeDevice d, ParseResult r, Shared o)
    {
        string netPath = SampleCommand.ResolveWeights(r.GetValue(o.FeatureNet), ShippedFeatureNet, "--feature-net", required: true)!;
        var meta = SafeTensorsFile.Read(netPath).Metadata;
        string data = r.GetValue(o.Data) ?? meta.GetValueOrDefault(TrainCheckpoint.DataKey) ?? "fashion-mnist";
        var loaded = ModelCheckpoint.Load(d, netPath);
        if (loaded is not Classifier net)
        {
            loaded.Dispose();
            throw new KdException($"{netPath}: holds a {loaded.Config.Model}, not a classifier (train one with kd train-classifier --clean)");
        }
        if (meta.GetValueOrDefault(TrainCheckpoint.CleanKey) is not "true")
            AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(netPath)} was not trained with --clean: its features see x_0 as a noise-aware classifier does");
        FeatureSet reference = null!;
        string name = "";
        bool cached = false;
        AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn()).Start(ctx =>
        {
            var task = ctx.AddTask("reference features");
            reference = ReferenceImages.Features(d, net, netPath, r.GetValue(o.Reference)!, data, r.GetValue(o.Cache)!, r.GetValue(o.Limit),
                out name, out cached, (done, all) => { task.MaxValue = all; task.Value = done; });
            task.Value = task.MaxValue;
        });
        AnsiConsole.MarkupLine($"reference: {reference.Count:N0} images of {Markup.Escape(name)}{(cached ? " (cached features)" : "")}");
        return (net, reference, name);
    }

    public static Command Create()
    {
        var samples = new Option<string>("--samples") { Description = "NPZ of uint8 NHWC samples (arr_0) and optionally their labels (arr_1), as kd sample --npz writes", Required = true };
        var outDir = new Option<string?>("--out") { Description = "folder for eval.md and eval.json (default: beside the samples, as SAMPLES.eval.md/json)" };
        var device = Common.DeviceOption();
        var shared = Shared.Create();
        var cmd = new Command("eval", "FID, sFID, Inception-style score, precision, recall and sample accuracy of samples against real images.");
        foreach (var o in new Option[] { samples, outDir, device }.Concat(shared.All)) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string path = r.GetValue(samples)!;
            if (!File.Exists(path)) throw new KdException($"--samples {path}: no such file");
            using var d = ComputeDevice.Open(r.GetValue(device));
            var (net, reference, name) = Prepare(d, r, shared);
            using (net)
            {
                var (pixels, count, labels) = ReferenceImages.FromNpz(path, net.Config.ImageSize, net.Config.InChannels);
                var features = FeatureSet.Extract(d, net, pixels, count);
                var result = Evaluator.Compare(features, labels, reference, name);
                Write(result, r.GetValue(outDir), path);
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary><c>kd eval-classifier</c>: a noise-aware classifier's accuracy on noised held-out images, per quarter of
    /// the timestep range and at t = 0.</summary>
    public static Command CreateClassifierAccuracy()
    {
        var classifier = new Option<string?>("--classifier") { Description = $"classifier weights (file or kd train-classifier folder); default {SampleCommand.ShippedClassifier}" };
        var data = new Option<string?>("--data") { Description = "data set (default: the one the classifier was trained on)" };
        var split = new Option<string>("--split") { Description = "test | train", DefaultValueFactory = _ => "test" };
        var limit = new Option<int>("--limit") { Description = "use only the first N images (0: all)" };
        var seed = new Option<ulong>("--seed") { Description = "seed of the timesteps and the noise", DefaultValueFactory = _ => 0UL };
        var outPath = new Option<string?>("--out") { Description = "also write the table to this markdown file" };
        var device = Common.DeviceOption();
        var cmd = new Command("eval-classifier", "Accuracy of a noise-aware classifier on noised held-out images, per quarter of the timestep range and at t = 0.");
        foreach (var o in new Option[] { classifier, data, split, limit, seed, outPath, device }) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string path = SampleCommand.ResolveWeights(r.GetValue(classifier), SampleCommand.ShippedClassifier, "--classifier", required: true)!;
            var meta = SafeTensorsFile.Read(path).Metadata;
            string spec = r.GetValue(data) ?? meta.GetValueOrDefault(TrainCheckpoint.DataKey) ?? "fashion-mnist";
            var (scheduleName, timesteps) = TrainCheckpoint.ScheduleOf(meta, path);
            var schedule = Diffusion.NoiseSchedule.Named(scheduleName, timesteps);
            if (r.GetValue(split) is not ("test" or "train")) throw new KdException($"--split {r.GetValue(split)}: want test or train");
            using var d = ComputeDevice.Open(r.GetValue(device));
            using var loaded = ModelCheckpoint.Load(d, path);
            if (loaded is not Classifier net) throw new KdException($"{path}: holds a {loaded.Config.Model}, not a classifier");
            var set = Data.DataSources.Open(spec, train: r.GetValue(split) == "train", size: net.Config.ImageSize, channels: net.Config.InChannels);
            if (r.GetValue(limit) > 0) set = set.Take(r.GetValue(limit));
            AnsiConsole.MarkupLine($"{Markup.Escape(path)} on {set.Count:N0} images of {Markup.Escape(set.Source)}, {schedule.Name} schedule, T = {schedule.T}");
            NoisedAccuracy result = null!;
            AnsiConsole.Progress().Start(ctx =>
            {
                var task = ctx.AddTask("classifying");
                result = NoisedAccuracy.Measure(d, net, set, schedule, r.GetValue(seed), progress: (k, all) => { task.MaxValue = all; task.Value = k; });
            });
            var md = result.ToMarkdown(schedule.T);
            AnsiConsole.WriteLine(md);
            if (r.GetValue(outPath) is { } o) AtomicFile.WriteAllText(o, md);
            return 0;
        }));
        return cmd;
    }

    static void Write(EvalResult result, string? outDir, string samplesPath)
    {
        string stem = outDir != null ? Path.Combine(outDir, "eval") : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(samplesPath))!, Path.GetFileNameWithoutExtension(samplesPath) + ".eval");
        if (outDir != null) Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(stem + ".md", result.ToMarkdown());
        AtomicFile.WriteAllText(stem + ".json", result.ToJson());
        AnsiConsole.WriteLine(result.ToMarkdown());
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(stem)}.md[/] and .json");
    }
}
