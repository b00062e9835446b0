using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checkpoints;

/// <summary>Models as safetensors files: every parameter as F32 under its guided-diffusion name, the configuration
/// as JSON under the metadata key "config". Loading checks every name and shape against the configuration before
/// touching the model, so a bad file never leaves a half-loaded model.</summary>
public static class ModelCheckpoint
{
    public const string ConfigKey = "config";

    public static void Save(string path, DiffusionTrunk model, IReadOnlyDictionary<string, string>? extraMetadata = null)
        => Save(path, model.Config, model.NamedParameters(), extraMetadata);

    /// <summary>Writes named tensors (a model's parameters, or its EMA averages under the parameters' names) with the
    /// configuration in the metadata.</summary>
    public static void Save(string path, ModelConfig config, IEnumerable<(string Name, Tensor Param)> tensors, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var meta = new Dictionary<string, string> { ["format"] = "pt", [ConfigKey] = config.ToJson() };
        if (extraMetadata != null)
            foreach (var (k, v) in extraMetadata) meta[k] = v;
        SafeTensorsFile.Write(path, tensors.Select(p => new SafeTensorWrite(p.Name, p.Param.Shape.Select(v => (long)v).ToArray(), p.Param.ToArray())), meta);
    }

    /// <summary>The configuration stored in a checkpoint, or the one in <paramref name="configPath"/> when given (a
    /// converted guided-diffusion checkpoint has none of its own).</summary>
    public static ModelConfig ConfigOf(SafeTensorsFile file, string source, string? configPath)
    {
        if (configPath != null) return ModelConfig.FromFile(configPath);
        if (!file.Metadata.TryGetValue(ConfigKey, out var json))
            throw new KdException($"{source}: no model configuration in its metadata: pass one with --config FILE.json");
        return ModelConfig.FromJson(json, $"{source} (metadata '{ConfigKey}')");
    }

    /// <summary>Builds the model the file describes and loads its weights.</summary>
    public static DiffusionTrunk Load(ComputeDevice d, string path, string? configPath = null)
    {
        var file = SafeTensorsFile.Read(path);
        var config = ConfigOf(file, path, configPath);
        DiffusionTrunk model = config.IsClassifier ? new Classifier(d, config) : new UNet(d, config);
        try
        {
            LoadInto(model, file, path);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Copies the file's tensors into the model's parameters after checking them all: the first missing
    /// tensor, shape mismatch or unexpected tensor is reported, and nothing is copied.</summary>
    public static void LoadInto(Module model, SafeTensorsFile file, string source)
    {
        var targets = model.NamedParameters().ToList();
        var known = targets.Select(p => p.Name).ToHashSet();
        var extra = file.Tensors.FirstOrDefault(t => !known.Contains(t.Name));
        var values = ReadChecked(file, source, targets);
        if (extra != null)
            throw new KdException($"{source}: tensor '{extra.Name}' is not a parameter of the configured model (wrong configuration?)");
        Copy(targets, values);
    }

    /// <summary>Reads the file's tensor for every target after checking that each exists with the target's shape;
    /// throws at the first problem, having changed nothing.</summary>
    public static List<float[]> ReadChecked(SafeTensorsFile file, string source, IReadOnlyList<(string Name, Tensor Param)> targets)
    {
        foreach (var (name, p) in targets)
        {
            if (!file.Contains(name))
                throw new KdException($"{source}: tensor '{name}' {p.ShapeText} is missing (the configuration has {targets.Count} parameter tensors, the file {file.Tensors.Count})");
            var info = file.Info(name);
            if (!info.Shape.SequenceEqual(p.Shape.Select(v => (long)v)))
                throw new KdException($"{source}: tensor '{name}' is [{string.Join(",", info.Shape)}] in the file but [{string.Join(",", p.Shape)}] in the configuration");
        }
        return targets.Select(t => file.ReadFloat32(t.Name)).ToList();   // every conversion done before any write
    }

    public static void Copy(IReadOnlyList<(string Name, Tensor Param)> targets, List<float[]> values)
    {
        for (int i = 0; i < targets.Count; i++) targets[i].Param.CopyFrom(values[i]);
    }
}
