using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd sample</c>: a labelled PNG grid (a row per class) and optionally guided-diffusion's NPZ, with any
/// sampler and guidance; a progress bar, and at the end the time and launches per op.</summary>
static class SampleCommand
{
    /// <summary>The shipped weights <c>kd sample</c> uses when no checkpoint is given (looked up from the working
    /// folder upwards, then from the program's folder upwards).</summary>
    public const string ShippedModel = "weights/fmnist-cfg-unet.safetensors", ShippedClassifier = "weights/fmnist-classifier.safetensors";

    public static Command Create()
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = $"UNet weights (.safetensors or a kd train folder); default {ShippedModel}" };
        var classifier = new Option<string?>("--classifier") { Description = $"noise-aware classifier for classifier guidance (file or kd train-classifier folder); default {ShippedClassifier} when present" };
        var classes = new Option<string>("--classes") { Description = "classes, a row each: all, 0-9, 1,3,5", DefaultValueFactory = _ => "all" };
        var perClass = new Option<int>("--per-class") { Description = "samples per class (grid columns)", DefaultValueFactory = _ => 2 };
        var guidance = new Option<string?>("--guidance") { Description = "none | cfg | classifier | both (default: cfg when the model has a null label, else none)" };
        var scale = new Option<float>("--scale") { Description = "classifier-free guidance scale (see --scale-convention)", DefaultValueFactory = _ => 2f };
        var convention = new Option<string>("--scale-convention") { Description = "w: (1 + w) eps(x, c) - w eps(x) (Ho & Salimans); s: eps(x) + s (eps(x, c) - eps(x)) (diffusers), s = 1 + w", DefaultValueFactory = _ => "w" };
        var classifierScale = new Option<float>("--classifier-scale") { Description = "classifier guidance scale s (Dhariwal & Nichol)", DefaultValueFactory = _ => 1f };
        var sampler = new Option<string?>("--sampler") { Description = "ddpm | ddim | logsnr (default: ddim, or logsnr for a model trained on the logsnr schedule)" };
        var steps = new Option<string>("--steps") { Description = "timestep respacing as guided-diffusion writes it: 25, 10,15,20, ddim25 (a count for logsnr)", DefaultValueFactory = _ => "25" };
        var eta = new Option<double>("--eta") { Description = "DDIM eta (0: deterministic)" };
        var variance = new Option<string>("--variance") { Description = "DDPM variance: auto | fixed-small | fixed-large | learned", DefaultValueFactory = _ => "auto" };
        var logsnrV = new Option<double>("--logsnr-v") { Description = "log-SNR sampler's variance interpolation v", DefaultValueFactory = _ => 0.3 };
        var clip = new Option<string>("--clip") { Description = "x0 clipping: none | static | dynamic", DefaultValueFactory = _ => "static" };
        var percentile = new Option<double>("--percentile") { Description = "dynamic thresholding percentile of |x0|", DefaultValueFactory = _ => 0.995 };
        var gradAt = new Option<string>("--grad-at") { Description = "classifier gradient at xt or at the unguided mean (ancestral samplers)", DefaultValueFactory = _ => "xt" };
        var interval = new Option<string?>("--interval") { Description = "guide only at noise levels sigma = sqrt((1 - abar) / abar) in LO,HI" };
        var rescale = new Option<double>("--rescale") { Description = "CFG rescale phi in [0, 1] (0: off)" };
        var cfgpp = new Option<bool>("--cfgpp") { Description = "CFG++ (DDIM renoises with the unconditional eps; scales lambda in [0, 1] in the s convention)" };
        var schedule = new Option<string?>("--schedule") { Description = "noise schedule, when the checkpoint does not say (linear | cosine | logsnr)" };
        var timesteps = new Option<int?>("--timesteps") { Description = "schedule length T, when the checkpoint does not say" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var batch = new Option<int>("--batch") { Description = "samples per forward (CFG doubles it)", DefaultValueFactory = _ => 64 };
        var outPath = new Option<string>("--out") { Description = "PNG grid", DefaultValueFactory = _ => "samples.png" };
        var npz = new Option<string?>("--npz") { Description = "also write uint8 NHWC images and labels as guided-diffusion's NPZ (arr_0, arr_1)" };
        var zoom = new Option<int>("--zoom") { Description = "grid pixel scale", DefaultValueFactory = _ => 2 };
        var noProfile = new Option<bool>("--no-profile") { Description = "skip the per-op timing (on a GPU it times between stream markers; elsewhere it synchronises the device after every op)" };
        var device = Common.DeviceOption();
        var cmd = new Command("sample", "Sample a grid of images with classifier-free and/or classifier guidance.");
        foreach (var o in new Option[] { checkpoint, classifier, classes, perClass, guidance, scale, convention, classifierScale, sampler, steps, eta, variance, logsnrV,
                     clip, percentile, gradAt, interval, rescale, cfgpp, schedule, timesteps, seed, batch, outPath, npz, zoom, noProfile, device })
            cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            if (r.GetValue(batch) < 1) throw new KdException($"--batch {r.GetValue(batch)} must be positive");
            if (r.GetValue(perClass) < 1) throw new KdException($"--per-class {r.GetValue(perClass)} must be positive");
            string? mode = r.GetValue(guidance);
            if (mode is not (null or "none" or "cfg" or "classifier" or "both")) throw new KdException($"--guidance '{mode}' is not none, cfg, classifier or both");

            using var d = ComputeDevice.Open(r.GetValue(device), profiling: !r.GetValue(noProfile));
            using var m = Models.Load(d, r.GetValue(checkpoint), r.GetValue(classifier), mode is "classifier" or "both", r.GetValue(schedule), r.GetValue(timesteps));
            var (model, guide, names, modelPath, scheduleName, t) = (m.Model, m.Guide, m.ClassNames, m.Path, m.Schedule, m.Timesteps);
            mode ??= model.NullLabel != null ? "cfg" : "none";
            bool useCfg = mode is "cfg" or "both", useClassifier = mode is "classifier" or "both";
            var rows = ParseClasses(r.GetValue(classes)!, names.Count);
            int per = r.GetValue(perClass), count = rows.Length * per;
            int[]? labels = names.Count > 0 ? rows.SelectMany(k => Enumerable.Repeat(k, per)).ToArray() : null;
            float w = r.GetValue(scale);
            if (r.GetValue(convention) == "s") w -= 1;
            else if (r.GetValue(convention) != "w") throw new KdException($"--scale-convention '{r.GetValue(convention)}' is not w or s");
            var (lo, hi) = ParseInterval(r.GetValue(interval));
            var o = new SampleOptions
            {
                Sampler = r.GetValue(sampler) ?? (scheduleName == "logsnr" ? "logsnr" : "ddim"), Steps = r.GetValue(steps)!, Eta = r.GetValue(eta),
                Variance = r.GetValue(variance)!, LogSnrV = r.GetValue(logsnrV), Clip = r.GetValue(clip)!, Percentile = r.GetValue(percentile),
                GradientAt = r.GetValue(gradAt)!, IntervalLow = lo, IntervalHigh = hi, RescalePhi = r.GetValue(rescale), CfgPlusPlus = r.GetValue(cfgpp),
                Seed = r.GetValue(seed),
            };
            var all = SampleBatch.Uniform(labels, count, useCfg ? w : 0, useClassifier ? r.GetValue(classifierScale) : 0);
            var plan = GuidedSampler.Plan(scheduleName, t, o, model.LearnsSigma);
            GuidedSampler.Validate(model, guide, all, o);

            string what = $"{o.Sampler} {plan.Length} steps, guidance {mode}" + (useCfg ? $" w {w.ToString(CultureInfo.InvariantCulture)}" : "")
                          + (useClassifier ? $" s {r.GetValue(classifierScale).ToString(CultureInfo.InvariantCulture)}" : "");
            AnsiConsole.MarkupLine($"sampling {count} images ({rows.Length} classes x {per}) from {Markup.Escape(modelPath)} on [green]{Markup.Escape(d.Label)}[/]: {Markup.Escape(what)}");
            if (!r.GetValue(noProfile)) d.Profiler = d.NewProfiler();
            int size = r.GetValue(batch), batches = (count + size - 1) / size;
            var clock = Stopwatch.StartNew();
            float[] pixels = [];
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("sampling", maxValue: batches * plan.Length);
                    Common.ShowTuning(d, task);
                    pixels = GuidedSampler.SampleAll(d, model, guide, plan, all, o, size, (k, total) =>
                    {
                        task.Value = k;
                        if (k == 1 && total > 1) d.Profiler?.Restart(d);
                    });
                });
            d.Synchronize();
            d.Profiler?.Close();
            double seconds = clock.Elapsed.TotalSeconds;

            string png = r.GetValue(outPath)!;
            var rowLabels = labels == null ? null : rows.Select(k => names[k]).ToList();
            int cols = labels == null ? Math.Min(count, 8) : per;
            ImageGrid.Save(png, pixels, count, model.Channels, model.ImageSize, model.ImageSize, cols, rowLabels, what, r.GetValue(zoom));
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(png)}[/]");
            if (r.GetValue(npz) is { } npzPath)
            {
                Npz.WriteImages(npzPath, ImageGrid.ToUint8Nhwc(pixels, count, model.Channels, model.ImageSize, model.ImageSize), count,
                    model.ImageSize, model.ImageSize, model.Channels, labels);
                AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(npzPath)}[/] (arr_0 uint8 [[{count},{model.ImageSize},{model.ImageSize},{model.Channels}]], arr_1 labels)");
            }
            AnsiConsole.MarkupLine($"{seconds:F2} s in all, {1000 * seconds / (batches * plan.Length):F1} ms per step of up to {Math.Min(size, count)} samples" +
                                   (d.Profiler != null ? $" (with per-op timing: {Common.ProfileClock(d.Profiler)})" : ""));
            if (d.Profiler != null)
            {
                if (d.Profiler.WarmUpLeftOut) AnsiConsole.WriteLine("time and launches per op over the steps after the first (which compiles the kernels):");
                AnsiConsole.WriteLine(d.Profiler.Report(25));
                AnsiConsole.WriteLine("the same per op and shapes (an op's inputs; a backward node's forward's), the 30 longest:");
                AnsiConsole.WriteLine(d.Profiler.ShapeReport(30));
            }
            Common.ReportTuning(d);
            return 0;
        }));
        return cmd;
    }

    /// <summary>A UNet checkpoint as a denoiser (schedule, T and null label from its metadata unless overridden), and
    /// optionally a classifier as the source of guidance gradients.</summary>
    internal sealed class Models : IDisposable
    {
        DiffusionTrunk? unet;
        Classifier? classifier;
        public UNetDenoiser Model { get; private set; } = null!;
        public ClassifierGradient? Guide { get; private set; }
        public IReadOnlyList<string> ClassNames { get; private set; } = [];
        public string Path { get; private set; } = "";
        public string Schedule { get; private set; } = "linear";
        public int Timesteps { get; private set; } = 1000;

        public static Models Load(ComputeDevice d, string? checkpoint, string? classifierPath, bool needClassifier, string? schedule, int? timesteps)
        {
            var m = new Models();
            try
            {
                m.Path = ResolveWeights(checkpoint, ShippedModel, "--checkpoint", required: true)!;
                var meta = SafeTensorsFile.Read(m.Path).Metadata;
                var (savedSchedule, savedTimesteps) = TrainCheckpoint.ScheduleOf(meta, m.Path);
                m.Schedule = schedule ?? savedSchedule;
                m.Timesteps = timesteps ?? savedTimesteps;
                bool hasNull = !meta.TryGetValue(TrainCheckpoint.PUncondKey, out var pu) || double.Parse(pu, CultureInfo.InvariantCulture) > 0;
                m.unet = ModelCheckpoint.Load(d, m.Path);
                if (m.unet is not UNet u) throw new KdException($"{m.Path}: holds a {m.unet.Config.Model}, not a UNet (pass it as --classifier)");
                m.Model = new UNetDenoiser(u, hasNull);
                if (needClassifier)
                {
                    string path = ResolveWeights(classifierPath, ShippedClassifier, "--classifier", required: false)
                        ?? throw new KdException($"classifier guidance needs a classifier: pass --classifier FILE (no shipped {ShippedClassifier} was found)");
                    var loaded = ModelCheckpoint.Load(d, path);
                    if (loaded is not Classifier c)
                    {
                        loaded.Dispose();
                        throw new KdException($"{path}: holds a {loaded.Config.Model}, not a classifier");
                    }
                    m.classifier = c;
                    m.Guide = new ClassifierGradient(c);
                }
                m.ClassNames = Names(meta.GetValueOrDefault(TrainCheckpoint.DataKey), m.Model.NumClasses - (m.Model.NullLabel != null ? 1 : 0), m.classifier?.Config.OutChannels);
                return m;
            }
            catch
            {
                m.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Guide?.Dispose();
            classifier?.Dispose();
            unet?.Dispose();
        }
    }

    /// <summary>A file, a training folder (its model.safetensors) or, when none is given, the shipped file.</summary>
    internal static string? ResolveWeights(string? given, string shipped, string option, bool required)
    {
        if (given != null)
        {
            var path = Directory.Exists(given) ? Path.Combine(given, TrainCheckpoint.ModelFile) : given;
            if (!File.Exists(path)) throw new KdException($"{option} {given}: no such file{(Directory.Exists(given) ? $" ({TrainCheckpoint.ModelFile} is missing in that folder)" : "")}");
            return path;
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, shipped))) return Path.Combine(dir.FullName, shipped);
        if (!required) return null;
        throw new KdException($"no {option} given and no shipped {shipped} found: train a model (kd train --out runs/unet) and pass --checkpoint runs/unet");
    }

    static IReadOnlyList<string> Names(string? data, int classes, int? classifierClasses)
    {
        int n = classes > 0 ? classes : classifierClasses ?? 0;
        IReadOnlyList<string>? known = data == "fashion-mnist" ? DataSources.FashionMnistClasses
            : data != null && data.StartsWith("mnist", StringComparison.Ordinal) ? DataSources.DigitClasses : null;
        return known != null && known.Count == n ? known : Enumerable.Range(0, n).Select(k => $"class {k}").ToList();
    }

    /// <summary>"all", "3", "0-9", "1,3,5-7".</summary>
    internal static int[] ParseClasses(string spec, int classes)
    {
        if (classes == 0) return [0];
        if (spec == "all") return Enumerable.Range(0, classes).ToArray();
        var list = new List<int>();
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-');
            if (ends.Length is < 1 or > 2 || !ends.All(e => int.TryParse(e, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
                throw new KdException($"--classes '{spec}': '{part}' is not a class or a range such as 0-9");
            int a = int.Parse(ends[0], CultureInfo.InvariantCulture), b = int.Parse(ends[^1], CultureInfo.InvariantCulture);
            if (a > b || b >= classes) throw new KdException($"--classes '{spec}': '{part}' is outside the model's classes 0-{classes - 1}");
            for (int k = a; k <= b; k++) list.Add(k);
        }
        return [.. list];
    }

    static (double Lo, double Hi) ParseInterval(string? spec)
    {
        if (spec == null) return (0, double.PositiveInfinity);
        var p = spec.Split(',');
        if (p.Length == 2 && double.TryParse(p[0], CultureInfo.InvariantCulture, out var lo) && double.TryParse(p[1], CultureInfo.InvariantCulture, out var hi)) return (lo, hi);
        throw new KdException($"--interval '{spec}' is not LO,HI (noise levels sigma, e.g. 0.3,5)");
    }
}
