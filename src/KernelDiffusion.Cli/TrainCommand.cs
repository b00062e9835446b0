using System.CommandLine;
using System.Globalization;
using System.Text;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd train</c> (the UNet denoiser, classifier-free joint training) and <c>kd train-classifier</c> (the
/// noise-aware classifier): a progress bar, a CSV loss log, checkpoints every N steps and at the end, exact resume.</summary>
static class TrainCommand
{
    public static Command Create(string kind)
    {
        bool unet = kind == "unet";
        var d0 = new TrainOptions { Kind = kind };
        var device = Common.DeviceOption();
        var config = new Option<string>("--config")
        {
            Description = "model configuration JSON (guided-diffusion's constructor names)",
            DefaultValueFactory = _ => unet ? "configs/fmnist_unet.json" : "configs/fmnist_classifier.json",
        };
        var data = new Option<string>("--data") { Description = "fashion-mnist | idx:DIR | mnist:DIR | folder:DIR", DefaultValueFactory = _ => d0.Data };
        var limit = new Option<int>("--limit") { Description = "use only the first N training images (0: all)" };
        var outDir = new Option<string>("--out") { Description = "run folder: state.safetensors, model.safetensors (EMA weights), loss.csv", Required = true };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --out exactly where it stopped (--steps may be raised)" };
        var steps = new Option<int>("--steps") { Description = "optimiser steps in all", DefaultValueFactory = _ => d0.Steps };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => d0.Batch };
        var micro = new Option<int>("--micro-batch") { Description = "accumulate gradients over micro-batches of this size (0: the batch)" };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => d0.Lr };
        var wd = new Option<double>("--weight-decay") { DefaultValueFactory = _ => d0.WeightDecay };
        var warmup = new Option<int>("--warmup") { Description = "linear warm-up steps" };
        var anneal = new Option<bool>("--anneal") { Description = "anneal the learning rate linearly to 0 at the last step" };
        var clip = new Option<double>("--clip") { Description = "global gradient-norm clip (0: off)", DefaultValueFactory = _ => d0.ClipNorm };
        var ema = new Option<string>("--ema") { Description = "EMA rates, comma-separated (the first is exported as model.safetensors)", DefaultValueFactory = _ => "0.9999" };
        var pUncond = new Option<double>("--p-uncond") { Description = "probability of training a sample with the null label (classifier-free guidance)", DefaultValueFactory = _ => d0.PUncond };
        var schedule = new Option<string>("--schedule") { Description = "linear | cosine | logsnr", DefaultValueFactory = _ => d0.Schedule };
        var timesteps = new Option<int>("--timesteps") { DefaultValueFactory = _ => d0.Timesteps };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => d0.Seed };
        var saveEvery = new Option<int>("--save-every") { Description = "checkpoint every N steps (0: only at the end)", DefaultValueFactory = _ => d0.SaveEvery };
        var maxBad = new Option<int>("--max-bad-steps") { Description = "stop after this many non-finite steps in a row", DefaultValueFactory = _ => d0.MaxBadSteps };
        var flip = new Option<bool>("--flip") { Description = "random horizontal flips" };
        var minutes = new Option<double>("--max-minutes") { Description = "stop (saving, resumable) after this much wall time, even before --steps (0: no limit)" };
        var clean = new Option<bool>("--clean") { Description = "train on clean images at t = 0 (the evaluation classifier of kd eval), not on x_t" };
        var sampleEvery = new Option<int>("--sample-every") { Description = "write DIR/samples/step-N.png every N steps, sampled with the current weights (0: never)" };
        var sampleSteps = new Option<int>("--sample-steps") { Description = "DDIM steps of those samples", DefaultValueFactory = _ => 25 };
        var guidance = new Option<float>("--guidance") { Description = "classifier-free guidance weight w of those samples: (1 + w) eps(x, c) - w eps(x)", DefaultValueFactory = _ => 1f };
        var perClass = new Option<int>("--samples-per-class") { Description = "columns of the grid (one row per class)", DefaultValueFactory = _ => 4 };
        var profile = new Option<bool>("--profile") { Description = "time every op and count its launches, forward and backward, and print the table at the end (on a GPU between stream markers, on the device's clock, with the host's time per op beside it; elsewhere it synchronises after every op: steps run slower)" };
        var cmd = new Command(unet ? "train" : "train-classifier",
            unet ? "Train the UNet denoiser (epsilon prediction; classifier-free guidance by dropping labels to the null label)."
                 : "Train the noise-aware classifier on x_t at uniformly drawn timesteps.");
        var options = new List<Option> { config, data, limit, outDir, resume, steps, batch, micro, lr, wd, warmup, anneal, clip, ema, schedule, timesteps, seed, saveEvery, maxBad, flip, minutes, profile, device };
        if (!unet) options.Insert(options.Count - 1, clean);
        if (unet)
        {
            options.Insert(14, pUncond);
            options.InsertRange(options.Count - 1, [sampleEvery, sampleSteps, guidance, perClass]);
        }
        foreach (var o in options) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string dir = r.GetValue(outDir)!;
            var rates = r.GetValue(ema)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => double.TryParse(s, CultureInfo.InvariantCulture, out var v) ? v : throw new KdException($"--ema: '{s}' is not a number")).ToArray();
            var o = new TrainOptions
            {
                Kind = kind, Data = r.GetValue(data)!, Steps = r.GetValue(steps), Batch = r.GetValue(batch), MicroBatch = r.GetValue(micro),
                Lr = r.GetValue(lr), WeightDecay = r.GetValue(wd), Warmup = r.GetValue(warmup), Anneal = r.GetValue(anneal), ClipNorm = r.GetValue(clip),
                EmaRates = rates, PUncond = unet ? r.GetValue(pUncond) : 0, Schedule = r.GetValue(schedule)!, Timesteps = r.GetValue(timesteps),
                Seed = r.GetValue(seed), SaveEvery = r.GetValue(saveEvery), MaxBadSteps = r.GetValue(maxBad), Flip = r.GetValue(flip), Clean = !unet && r.GetValue(clean),
            };
            if (r.GetValue(resume))
            {
                var saved = TrainCheckpoint.OptionsOf(dir);
                if (saved.Kind != kind) throw new KdException($"{dir}: holds a '{saved.Kind}' run, not a '{kind}' run");
                o = saved with { Steps = Math.Max(saved.Steps, o.Steps), SaveEvery = o.SaveEvery };
            }
            else if (File.Exists(Path.Combine(dir, TrainCheckpoint.StateFile)))
                throw new KdException($"{dir} already holds a run: pass --resume to continue it, or choose another --out");
            o.Validate();
            var modelConfig = r.GetValue(resume) ? null : ModelConfig.FromFile(r.GetValue(config)!);
            var set = DataSources.Open(o.Data, train: true, size: modelConfig?.ImageSize, channels: modelConfig?.InChannels ?? 1);
            if (r.GetValue(limit) > 0) set = set.Take(r.GetValue(limit));
            using var d = ComputeDevice.Open(r.GetValue(device), profiling: r.GetValue(profile));
            if (r.GetValue(profile)) d.Profiler = d.NewProfiler();
            Directory.CreateDirectory(dir);
            Trainer t;
            if (r.GetValue(resume)) t = TrainCheckpoint.Resume(d, dir, set, o);
            else
            {
                DiffusionTrunk model = modelConfig!.IsClassifier ? new Classifier(d, modelConfig) : new UNet(d, modelConfig);
                if (model.Config.IsClassifier != (kind == "classifier"))
                    throw new KdException($"{r.GetValue(config)}: describes a {modelConfig.Model}, not a {kind}");
                model.Initialize(o.Seed);
                t = new Trainer(d, model, set, o);
            }
            var grid = unet ? new GridOptions(r.GetValue(sampleEvery), r.GetValue(sampleSteps), r.GetValue(guidance), r.GetValue(perClass)) : null;
            using (t)
            using (t.Model)
                return Run(t, dir, set, d, grid, r.GetValue(minutes));
        }));
        return cmd;
    }

    sealed record GridOptions(int Every, int Steps, float Guidance, int PerClass);

    /// <summary>A grid of samples from the current weights: one row per class (the null label excluded), or 4 rows of
    /// an unconditional model.</summary>
    static void WriteGrid(Trainer t, ComputeDevice d, string dir, GridOptions g)
    {
        var c = t.Model.Config;
        var o = t.Options;
        var model = new UNetDenoiser((UNet)t.Model, hasNullLabel: o.PUncond > 0);
        int[]? labels = c.NumClasses > 0 ? Enumerable.Range(0, c.NumClasses - (model.NullLabel != null ? 1 : 0)).SelectMany(k => Enumerable.Repeat(k, g.PerClass)).ToArray() : null;
        int count = labels?.Length ?? 4 * g.PerClass;
        var options = new SampleOptions { Sampler = o.Schedule == "logsnr" ? "logsnr" : "ddim", Steps = Math.Min(g.Steps, o.Timesteps).ToString(CultureInfo.InvariantCulture), Seed = o.Seed };
        var plan = GuidedSampler.Plan(o.Schedule, o.Timesteps, options, model.LearnsSigma);
        var pixels = GuidedSampler.Sample(d, model, null, plan, SampleBatch.Uniform(labels, count, model.NullLabel != null ? g.Guidance : 0, 0), options);
        ImageGrid.Save(Path.Combine(dir, "samples", $"step-{t.Step}.png"), pixels, count, c.InChannels, c.ImageSize, c.ImageSize, g.PerClass);
    }

    static int Run(Trainer t, string dir, ImageDataSet set, ComputeDevice d, GridOptions? grid, double maxMinutes)
    {
        var o = t.Options;
        AnsiConsole.MarkupLine($"{o.Kind} with {t.Model.ParameterCount:N0} parameters on [green]{Markup.Escape(d.Label)}[/]; data {Markup.Escape(set.Source)}: {set.Count:N0} images; " +
                               $"{(t.Step > 0 ? $"resuming at step {t.Step}" : "from scratch")} to step {o.Steps}");
        var log = new LossLog(Path.Combine(dir, "loss.csv"), o.Kind == "classifier", t.Step);
        bool stop = false;
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop = true; };
        Console.CancelKeyPress += onCancel;
        try
        {
            var started = DateTime.UtcNow;
            long first = t.Step;
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: o.Steps);
                    Common.ShowTuning(d, task);
                    task.Value = t.Step;
                    while (t.Step < o.Steps && !stop)
                    {
                        var s = t.TrainStep();
                        if (t.Step == first + 1 && o.Steps > t.Step) d.Profiler?.Restart(d);
                        log.Append(s, (DateTime.UtcNow - started).TotalSeconds);
                        double rate = (t.Step - first) / Math.Max(1e-9, (DateTime.UtcNow - started).TotalSeconds);
                        string acc = s.QuarterAccuracy == null ? "" : " acc/quarter " + string.Join(" ", s.QuarterAccuracy.Select(a => double.IsNaN(a) ? "-" : a.ToString("F2")));
                        task.Description = Markup.Escape($"step {t.Step}/{o.Steps} loss {s.Loss:F4}{acc} {rate:F2} steps/s{(s.Skipped ? " SKIPPED (non-finite)" : "")}");
                        task.Value = t.Step;
                        if (o.SaveEvery > 0 && t.Step % o.SaveEvery == 0)
                        {
                            d.Profiler?.Mark(d, "checkpoint");   // its own row, not the step's tail ("optimizer")
                            TrainCheckpoint.Save(dir, t);
                        }
                        if (maxMinutes > 0 && (DateTime.UtcNow - started).TotalMinutes >= maxMinutes) stop = true;
                        if (grid is { Every: > 0 } && t.Step % grid.Every == 0)
                        {
                            task.Description = Markup.Escape($"step {t.Step}/{o.Steps}: sampling a grid");
                            WriteGrid(t, d, dir, grid);
                        }
                    }
                });
            // The profile ends with the last step: the final save would otherwise be charged to its tail ("optimizer").
            d.Synchronize();
            d.Profiler?.Close();
            TrainCheckpoint.Save(dir, t);
            Common.ReportTuning(d);
            if (d.Profiler != null)
            {
                bool warm = d.Profiler.WarmUpLeftOut;
                AnsiConsole.WriteLine($"time and launches per op over {t.Step - first - (warm ? 1 : 0)} steps{(warm ? " after the first (which compiles the kernels)" : "")} " +
                                      $"({Common.ProfileClock(d.Profiler)}{(grid is { Every: > 0 } ? "; the sample grids are included" : "")}):");
                AnsiConsole.WriteLine(d.Profiler.Report(25));
                AnsiConsole.WriteLine("the same per op and shapes (an op's inputs; a backward node's forward's), the 30 longest:");
                AnsiConsole.WriteLine(d.Profiler.ShapeReport(30));
            }
            AnsiConsole.MarkupLine($"{(stop ? "stopped" : "done")} at step {t.Step} after {(DateTime.UtcNow - started).TotalSeconds:F0} s; {t.SkippedSteps} skipped steps; saved {Markup.Escape(Path.Combine(dir, TrainCheckpoint.StateFile))} and {TrainCheckpoint.ModelFile}");
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>loss.csv: one row per step; on resume, rows from steps after the checkpoint (a run killed between
    /// checkpoints) are dropped so that every step appears once.</summary>
    sealed class LossLog
    {
        readonly string path;

        public LossLog(string path, bool classifier, long resumeStep)
        {
            this.path = path;
            string header = "step,loss,grad_norm,lr,skipped,seconds" + (classifier ? ",acc_q1,acc_q2,acc_q3,acc_q4" : "");
            var keep = File.Exists(path)
                ? File.ReadAllLines(path).Skip(1).Where(l => long.TryParse(l.Split(',')[0], CultureInfo.InvariantCulture, out var s) && s < resumeStep)
                : [];
            AtomicFile.WriteAllText(path, string.Join("\n", keep.Prepend(header)) + "\n");
        }

        public void Append(StepResult s, double seconds)
        {
            var line = new StringBuilder(FormattableString.Invariant($"{s.Step},{s.Loss:G6},{s.GradNorm:G6},{s.Lr:G6},{(s.Skipped ? 1 : 0)},{seconds:F2}"));
            if (s.QuarterAccuracy != null)
                foreach (var a in s.QuarterAccuracy) line.Append(FormattableString.Invariant($",{a:F4}"));
            File.AppendAllText(path, line.Append('\n').ToString());
        }
    }
}
