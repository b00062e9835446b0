using System.Globalization;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Data;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>A training run on disk: state.safetensors holds everything a resume needs (model, every EMA, the Adam
/// moments under "model.", "ema_RATE.", "adam_m.", "adam_v." prefixes; step, counters and both configurations in the
/// metadata); model.safetensors holds the first EMA's weights as a plain model checkpoint for sampling and tracing.
/// Both are written atomically, so a run killed at any moment leaves the previous checkpoint loadable.</summary>
public static class TrainCheckpoint
{
    public const string StateFile = "state.safetensors", ModelFile = "model.safetensors";
    public const string ScheduleKey = "schedule", TimestepsKey = "timesteps", PUncondKey = "p_uncond", DataKey = "data", CleanKey = "clean";

    /// <summary>The schedule name and T a checkpoint records (linear and 1000 for files that predate the keys), a bad
    /// T refused with the file named.</summary>
    public static (string Schedule, int Timesteps) ScheduleOf(IReadOnlyDictionary<string, string> metadata, string path)
    {
        string schedule = metadata.GetValueOrDefault(ScheduleKey) ?? "linear";
        if (!metadata.TryGetValue(TimestepsKey, out var text)) return (schedule, 1000);
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int t) && t > 0
            ? (schedule, t)
            : throw new KdException($"{path}: metadata '{TimestepsKey}' is '{text}', not a positive integer");
    }

    static List<(string Name, Tensor Param)> Named(Trainer t)
    {
        var names = t.Model.NamedParameters().Select(p => p.Name).ToList();
        var list = new List<(string, Tensor)>();
        list.AddRange(t.Model.NamedParameters().Select(p => ("model." + p.Name, p.Param)));
        foreach (var e in t.Emas)
            list.AddRange(e.Pairs.Select((x, i) => ($"ema_{e.Rate.ToString(CultureInfo.InvariantCulture)}.{names[i]}", x.Shadow)));
        list.AddRange(t.Optimizer.State.Select((x, i) => ("adam_m." + names[i], x.M)));
        list.AddRange(t.Optimizer.State.Select((x, i) => ("adam_v." + names[i], x.V)));
        return list;
    }

    public static void Save(string dir, Trainer t)
    {
        var meta = new Dictionary<string, string>
        {
            ["kind"] = "kernel-diffusion train state", ["train"] = t.Options.ToJson(),
            ["step"] = t.Step.ToString(CultureInfo.InvariantCulture), ["adam_step"] = t.Optimizer.StepCount.ToString(CultureInfo.InvariantCulture),
            ["skipped_steps"] = t.SkippedSteps.ToString(CultureInfo.InvariantCulture), ["bad_in_a_row"] = t.BadInARow.ToString(CultureInfo.InvariantCulture),
            ["data_position"] = (t.Step * t.Options.Batch).ToString(CultureInfo.InvariantCulture),
        };
        ModelCheckpoint.Save(Path.Combine(dir, StateFile), t.Model.Config, Named(t), meta);
        var names = t.Model.NamedParameters().Select(p => p.Name).ToList();
        ModelCheckpoint.Save(Path.Combine(dir, ModelFile), t.Model.Config, t.Emas[0].Pairs.Select((x, i) => (names[i], x.Shadow)),
            new Dictionary<string, string>
            {
                ["weights"] = $"ema {t.Emas[0].Rate.ToString(CultureInfo.InvariantCulture)}", ["step"] = meta["step"],
                // What a sampler must know to use the weights: the noise schedule and whether label dropout made a null label.
                [ScheduleKey] = t.Options.Schedule, [TimestepsKey] = t.Options.Timesteps.ToString(CultureInfo.InvariantCulture),
                [PUncondKey] = t.Options.PUncond.ToString("R", CultureInfo.InvariantCulture), [DataKey] = t.Options.Data,
                [CleanKey] = t.Options.Clean ? "true" : "false",
            });
    }

    /// <summary>The training options stored in a run's state.</summary>
    public static TrainOptions OptionsOf(string dir)
    {
        var path = Path.Combine(dir, StateFile);
        var file = SafeTensorsFile.Read(path);
        if (!file.Metadata.TryGetValue("train", out var json)) throw new KdException($"{path}: not a training state (no 'train' metadata)");
        return TrainOptions.FromJson(json, path);
    }

    /// <summary>Rebuilds the trainer of a run exactly as it was saved; <paramref name="options"/> may only change the
    /// number of steps and how often to save.</summary>
    public static Trainer Resume(ComputeDevice d, string dir, ImageDataSet data, TrainOptions options)
    {
        var path = Path.Combine(dir, StateFile);
        var file = SafeTensorsFile.Read(path);
        var config = ModelCheckpoint.ConfigOf(file, path, null);
        DiffusionTrunk model = config.IsClassifier ? new Classifier(d, config) : new UNet(d, config);
        Trainer? t = null;
        try
        {
            t = new Trainer(d, model, data, options);
            var targets = Named(t);
            ModelCheckpoint.Copy(targets, ModelCheckpoint.ReadChecked(file, path, targets));
            long Meta(string key) => file.Metadata.TryGetValue(key, out var v) && long.TryParse(v, CultureInfo.InvariantCulture, out var n)
                ? n : throw new KdException($"{path}: metadata '{key}' is missing or not a number");
            t.Step = Meta("step");
            t.Optimizer.StepCount = Meta("adam_step");
            t.SkippedSteps = Meta("skipped_steps");
            t.BadInARow = (int)Meta("bad_in_a_row");
            return t;
        }
        catch
        {
            if (t != null) t.Dispose();
            model.Dispose();
            throw;
        }
    }
}
