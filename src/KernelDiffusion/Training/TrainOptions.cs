using System.Text.Json;
using System.Text.Json.Serialization;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Training;

/// <summary>Everything a training run needs beyond the model configuration; stored in its checkpoints so that a
/// resumed run continues with the same settings.</summary>
public sealed record TrainOptions
{
    /// <summary>"unet" (denoiser) or "classifier" (noise-aware classifier).</summary>
    public string Kind { get; init; } = "unet";
    public string Data { get; init; } = "fashion-mnist";
    public int Steps { get; init; } = 1000;
    public int Batch { get; init; } = 64;
    /// <summary>Micro-batch size; the gradient of each batch is accumulated over Batch / MicroBatch micro-batches.</summary>
    public int MicroBatch { get; init; }
    public double Lr { get; init; } = 1e-4;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double AdamEps { get; init; } = 1e-8;
    public double WeightDecay { get; init; }
    /// <summary>Linear warm-up over this many steps.</summary>
    public int Warmup { get; init; }
    /// <summary>Anneal the learning rate linearly to 0 at the last step.</summary>
    public bool Anneal { get; init; }
    /// <summary>Clip the global gradient norm to this (0: off).</summary>
    public double ClipNorm { get; init; } = 1.0;
    public double[] EmaRates { get; init; } = [0.9999];
    /// <summary>Classifier-free guidance: probability of replacing a label by the null label (the last class row).</summary>
    public double PUncond { get; init; } = 0.1;
    public string Schedule { get; init; } = "linear";
    public int Timesteps { get; init; } = 1000;
    public ulong Seed { get; init; }
    public int SaveEvery { get; init; } = 500;
    /// <summary>Non-finite steps in a row before the run stops.</summary>
    public int MaxBadSteps { get; init; } = 10;
    public bool Flip { get; init; }
    /// <summary>Classifier only: train on clean images at t = 0 (the evaluation classifier whose features give FID).</summary>
    public bool Clean { get; init; }

    public int Micro => MicroBatch <= 0 ? Batch : MicroBatch;

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = false };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainOptions FromJson(string json, string source)
    {
        try { return JsonSerializer.Deserialize<TrainOptions>(json, Json) ?? throw new KdException($"{source}: empty training options"); }
        catch (JsonException e) { throw new KdException($"{source}: training options are not valid ({e.Message})"); }
    }

    public void Validate()
    {
        void Fail(string m) => throw new KdException($"train: {m}");
        if (Kind is not ("unet" or "classifier")) Fail($"kind '{Kind}' is neither unet nor classifier");
        if (Steps < 1 || Batch < 1) Fail("--steps and --batch must be positive");
        if (Batch % Micro != 0) Fail($"--micro-batch {Micro} does not divide --batch {Batch}");
        if (!(Lr > 0)) Fail($"--lr {Lr} must be positive");
        if (PUncond is < 0 or > 1) Fail($"--p-uncond {PUncond} is outside [0, 1]");
        if (EmaRates.Length == 0 || EmaRates.Any(r => r is < 0 or >= 1)) Fail("--ema rates must lie in [0, 1)");
        if (Schedule is not ("linear" or "cosine" or "logsnr")) Fail($"--schedule '{Schedule}' is not linear, cosine or logsnr");
        if (Clean && Kind != "classifier") Fail("--clean trains a classifier on clean images; it does not apply to the UNet");
        if (ClipNorm < 0 || Warmup < 0 || SaveEvery < 0 || MaxBadSteps < 1) Fail("--clip, --warmup, --save-every must not be negative; --max-bad-steps at least 1");
    }

    /// <summary>The learning rate at a step (0-based): linear warm-up, then constant or linear annealing to 0.</summary>
    public double LrAt(long step)
    {
        double lr = Lr;
        if (Warmup > 0) lr *= Math.Min(1.0, (step + 1.0) / Warmup);
        if (Anneal) lr *= Math.Max(0.0, 1.0 - (double)step / Steps);
        return lr;
    }
}
