using KernelDiffusion.Autodiff;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>What a sampler needs from a denoiser: eps (and with learn_sigma the variance values) for a batch.</summary>
public interface IDenoiser
{
    int Channels { get; }
    int ImageSize { get; }
    /// <summary>Label rows, the null label included; 0 for an unconditional model.</summary>
    int NumClasses { get; }
    /// <summary>The label that means "no class" (classifier-free guidance), or null when the model has none.</summary>
    int? NullLabel { get; }
    /// <summary>The output has 2C channels: eps, then the learned-range values v in [-1, 1].</summary>
    bool LearnsSigma { get; }
    /// <summary>Output [N, C or 2C, H, W] (a tape temporary) for x [N, C, H, W], model timesteps t [N], labels [N]
    /// (null for an unconditional model).</summary>
    Tensor Predict(Tensor x, Tensor t, int[]? labels);
}

/// <summary>What classifier guidance needs: g = d/dx log p(y | x_t) for a batch.</summary>
public interface IGuidanceGradient
{
    int Channels { get; }
    int ImageSize { get; }
    int NumClasses { get; }
    /// <summary>g [N, C, H, W] for x [N, C, H, W] at model timesteps t [N] and labels [N]; valid until the next call
    /// or the next tape reset.</summary>
    Tensor Gradient(Tensor x, Tensor t, int[] labels);
}

/// <summary>Our UNet as a denoiser. Its null label is the last label row unless the training metadata says the model
/// was trained without label dropout.</summary>
public sealed class UNetDenoiser(UNet model, bool hasNullLabel = true) : IDenoiser
{
    public UNet Model { get; } = model;
    public int Channels => Model.Config.InChannels;
    public int ImageSize => Model.Config.ImageSize;
    public int NumClasses => Model.Config.NumClasses;
    public int? NullLabel => NumClasses > 0 && hasNullLabel ? NumClasses - 1 : null;
    public bool LearnsSigma => Model.Config.OutChannels == 2 * Model.Config.InChannels;

    public Tensor Predict(Tensor x, Tensor t, int[]? labels)
    {
        using (x.Device.Tape.NoGrad())
        {
            var y = labels == null ? null : x.Device.TemporaryLabels(labels, NumClasses);
            return Model.Forward(x, t, y);
        }
    }
}

/// <summary>Our noise-aware classifier as the source of guidance gradients: one forward and one backward through the
/// tape for the whole batch, g = d/dx sum_i log softmax(classifier(x_i, t_i))[y_i] (sample i's term depends only on
/// x_i, so the sum's gradient is each sample's own). The classifier's weights are frozen: no weight gradients.</summary>
public sealed class ClassifierGradient : IGuidanceGradient, IDisposable
{
    readonly Classifier model;
    Tensor? input;

    public ClassifierGradient(Classifier model)
    {
        this.model = model;
        foreach (var p in model.Parameters()) p.RequiresGrad = false;
    }

    public int Channels => model.Config.InChannels;
    public int ImageSize => model.Config.ImageSize;
    public int NumClasses => model.Config.OutChannels;

    public Tensor Gradient(Tensor x, Tensor t, int[] labels)
    {
        var d = x.Device;
        if (input == null || !input.Shape.SequenceEqual(x.Shape))
        {
            input?.Dispose();
            input = d.Empty(x.Shape, "classifier_input");
            input.RequiresGrad = true;
        }
        input.CopyFrom(x);
        input.ZeroGrad();
        var logits = model.Forward(input, t);
        var logp = Ops.Scale(Ops.Sum(Ops.CrossEntropy(logits, d.TemporaryLabels(labels, NumClasses))), -1);
        d.Tape.Backward(logp);
        return input.Grad!;
    }

    public void Dispose() => input?.Dispose();
}
