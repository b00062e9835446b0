using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Evaluation;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd sweep</c>: samples at each guidance scale, evaluates each, and writes the papers' trade-off as a
/// table (markdown and CSV) and a plot (FID against IS, precision against recall). Resumable: DIR/sweep.json records
/// every finished scale, and a rerun with the same settings continues after the last one.</summary>
static class SweepCommand
{
    sealed record Settings(string Checkpoint, string? Classifier, string Guidance, string Convention, float[] Scales, int PerClass, string Sampler,
        string Steps, double Eta, ulong Seed, string Reference, int ReferenceLimit, string? FeatureNet);

    sealed record State(Settings Settings, Dictionary<string, EvalResult> Results);

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    static string Key(float s) => s.ToString("R", CultureInfo.InvariantCulture);

    public static Command Create()
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = $"UNet weights (file or kd train folder); default {SampleCommand.ShippedModel}" };
        var classifier = new Option<string?>("--classifier") { Description = "noise-aware classifier for --guidance classifier" };
        var guidance = new Option<string>("--guidance") { Description = "cfg | classifier", DefaultValueFactory = _ => "cfg" };
        var scales = new Option<string>("--scales") { Description = "guidance scales, comma-separated", DefaultValueFactory = _ => "0,0.1,0.3,0.5,1,2,4" };
        var convention = new Option<string>("--scale-convention") { Description = "w or s (= 1 + w) for CFG scales", DefaultValueFactory = _ => "w" };
        var perClass = new Option<int>("--per-class") { Description = "samples per class at each scale", DefaultValueFactory = _ => 100 };
        var sampler = new Option<string>("--sampler") { Description = "ddpm | ddim | logsnr", DefaultValueFactory = _ => "ddim" };
        var steps = new Option<string>("--steps") { Description = "timestep respacing (25, ddim25, 10,15,20)", DefaultValueFactory = _ => "25" };
        var eta = new Option<double>("--eta") { Description = "DDIM eta" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var batch = new Option<int>("--batch") { Description = "samples per forward", DefaultValueFactory = _ => 64 };
        var outDir = new Option<string>("--out") { Description = "sweep folder: sweep.json (resume state), scale-S.npz, table.md, table.csv, plot.png", Required = true };
        var device = Common.DeviceOption();
        var shared = EvalCommand.Shared.Create();
        var cmd = new Command("sweep", "Sample and evaluate across guidance scales: the fidelity / diversity trade-off of both papers.");
        foreach (var o in new Option[] { checkpoint, classifier, guidance, scales, convention, perClass, sampler, steps, eta, seed, batch, outDir, device }.Concat(shared.All))
            cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string mode = r.GetValue(guidance)!, dir = r.GetValue(outDir)!;
            if (mode is not ("cfg" or "classifier")) throw new KdException($"--guidance '{mode}' is not cfg or classifier");
            if (r.GetValue(convention) is not ("w" or "s")) throw new KdException($"--scale-convention '{r.GetValue(convention)}' is not w or s");
            var list = r.GetValue(scales)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(v => float.TryParse(v, CultureInfo.InvariantCulture, out var f) ? f : throw new KdException($"--scales: '{v}' is not a number")).ToArray();
            if (list.Length == 0) throw new KdException("--scales gives no scale");
            if (r.GetValue(perClass) < 1 || r.GetValue(batch) < 1) throw new KdException("--per-class and --batch must be positive");
            var settings = new Settings(r.GetValue(checkpoint) ?? SampleCommand.ShippedModel, r.GetValue(classifier), mode, r.GetValue(convention)!, list,
                r.GetValue(perClass), r.GetValue(sampler)!, r.GetValue(steps)!, r.GetValue(eta), r.GetValue(seed), r.GetValue(shared.Reference)!,
                r.GetValue(shared.Limit), r.GetValue(shared.FeatureNet));
            var state = LoadState(dir, settings);

            using var d = ComputeDevice.Open(r.GetValue(device));
            using var m = SampleCommand.Models.Load(d, r.GetValue(checkpoint), r.GetValue(classifier), mode == "classifier", null, null);
            int classes = m.ClassNames.Count;
            if (classes == 0) throw new KdException("kd sweep needs class labels: an unconditional model without a classifier has none");
            var labels = Enumerable.Range(0, classes).SelectMany(k => Enumerable.Repeat(k, settings.PerClass)).ToArray();
            var o = new SampleOptions { Sampler = settings.Sampler, Steps = settings.Steps, Eta = settings.Eta, Seed = settings.Seed };
            var plan = GuidedSampler.Plan(m.Schedule, m.Timesteps, o, m.Model.LearnsSigma);
            SampleBatch Request(float scale)
            {
                float w = mode == "cfg" && settings.Convention == "s" ? scale - 1 : scale;
                return SampleBatch.Uniform(labels, labels.Length, mode == "cfg" ? w : 0, mode == "classifier" ? scale : 0);
            }
            foreach (var s in list) GuidedSampler.Validate(m.Model, m.Guide, Request(s), o);

            var (net, reference, referenceName) = EvalCommand.Prepare(d, r, shared);
            using (net)
            {
                var todo = list.Where(s => !state.Results.ContainsKey(Key(s))).ToArray();
                if (todo.Length < list.Length) AnsiConsole.MarkupLine($"resuming: {list.Length - todo.Length} of {list.Length} scales already done in {Markup.Escape(dir)}");
                int batches = (labels.Length + r.GetValue(batch) - 1) / r.GetValue(batch), perScale = batches * plan.Length;
                AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("sweep", maxValue: Math.Max(1, todo.Length * perScale));
                        for (int i = 0; i < todo.Length; i++)
                        {
                            float scale = todo[i];
                            task.Description = $"scale {Key(scale)}";
                            int done = i * perScale;
                            int size = m.Model.ImageSize, ch = m.Model.Channels;
                            string npz = Path.Combine(dir, $"scale-{Key(scale)}.npz");
                            // Samples written (atomically) by an interrupted run are complete: only their evaluation is missing.
                            if (!File.Exists(npz))
                            {
                                var pixels = GuidedSampler.SampleAll(d, m.Model, m.Guide, plan, Request(scale), o, r.GetValue(batch), (k, _) => task.Value = done + k);
                                Npz.WriteImages(npz, ImageGrid.ToUint8Nhwc(pixels, labels.Length, ch, size, size), labels.Length, size, size, ch, labels);
                            }
                            task.Value = done + perScale;
                            // Score the samples as kd eval would the NPZ: from their uint8 values.
                            var (stored, count, _) = ReferenceImages.FromNpz(npz, size, ch);
                            var result = Evaluator.Compare(FeatureSet.Extract(d, net, stored, count), labels, reference, referenceName);
                            state.Results[Key(scale)] = result;
                            AtomicFile.WriteAllText(Path.Combine(dir, "sweep.json"), JsonSerializer.Serialize(state, Json));
                        }
                        task.Value = task.MaxValue;
                    });
            }
            WriteReport(dir, state);
            return 0;
        }));
        return cmd;
    }

    /// <summary>The sweep's saved state; a folder holding a sweep with other settings is refused.</summary>
    static State LoadState(string dir, Settings settings)
    {
        string path = Path.Combine(dir, "sweep.json");
        Directory.CreateDirectory(dir);
        if (!File.Exists(path)) return new State(settings, []);
        State? saved;
        try { saved = JsonSerializer.Deserialize<State>(File.ReadAllText(path), Json); }
        catch (JsonException e) { throw new KdException($"{path}: not a sweep state ({e.Message}); remove it to start over"); }
        if (saved == null) throw new KdException($"{path}: empty sweep state; remove it to start over");
        var a = saved.Settings with { Scales = [] };
        var b = settings with { Scales = [] };
        if (a != b) throw new KdException($"{dir} holds a sweep with other settings ({JsonSerializer.Serialize(saved.Settings, Json).ReplaceLineEndings(" ")}): choose another --out");
        return saved with { Settings = settings };
    }

    static void WriteReport(string dir, State state)
    {
        var s = state.Settings;
        var rows = s.Scales.Where(x => state.Results.ContainsKey(Key(x))).Select(x => (Scale: x, R: state.Results[Key(x)])).ToList();
        string name = s.Guidance == "cfg" ? $"CFG scale {s.Convention}" : "classifier scale";
        var md = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"Guidance sweep: {s.Guidance}, {s.PerClass} samples per class, {s.Sampler} {s.Steps}, seed {s.Seed}; against {rows.FirstOrDefault().R?.Reference}")
            .AppendLine().AppendLine($"| {name} " + EvalResult.TableHeader.Split('\n')[0]).AppendLine("|---" + EvalResult.TableHeader.Split('\n')[1]);
        var csv = new StringBuilder("scale,fid,sfid,is,is_std,precision,recall,accuracy\n");
        foreach (var (scale, r) in rows)
        {
            md.AppendLine($"| {Key(scale)} " + r.TableRow());
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{scale},{r.Fid},{r.SFid},{r.IsMean},{r.IsStd},{r.Precision},{r.Recall},{r.Accuracy}"));
        }
        AtomicFile.WriteAllText(Path.Combine(dir, "table.md"), md.ToString());
        AtomicFile.WriteAllText(Path.Combine(dir, "table.csv"), csv.ToString());
        string P(float x) => (s.Guidance == "cfg" ? s.Convention + "=" : "s=") + Key(x);
        SweepPlot.Save(Path.Combine(dir, "plot.png"), $"{s.Guidance} guidance sweep ({s.Sampler} {s.Steps})", [
            new PlotPanel("FID against IS", "Inception-style score", "FID", rows.Select(x => (x.R.IsMean, x.R.Fid, P(x.Scale))).ToList()),
            new PlotPanel("precision against recall", "recall", "precision", rows.Select(x => (x.R.Recall, x.R.Precision, P(x.Scale))).ToList()),
        ]);
        AnsiConsole.WriteLine(md.ToString());
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.Combine(dir, "table.md"))}[/], table.csv and plot.png");
    }
}
