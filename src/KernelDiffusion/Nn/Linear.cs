using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>y = x W^T + b, W [out, in], with PyTorch's default initialisation U(-1/sqrt(in), 1/sqrt(in)) drawn from
/// Philox on the device.</summary>
public sealed class Linear : IDisposable
{
    public Tensor Weight { get; }
    public Tensor Bias { get; }

    public Linear(ComputeDevice device, int inFeatures, int outFeatures, ulong seed, string name = "linear")
    {
        float bound = 1f / MathF.Sqrt(inFeatures);
        Weight = device.Empty([outFeatures, inFeatures], name + ".weight");
        Bias = device.Empty([outFeatures], name + ".bias");
        Philox.Draw(device.Accelerator, Weight.View, Weight.Length, seed, 0, normal: false, -bound, 2 * bound);
        Philox.Draw(device.Accelerator, Bias.View, Bias.Length, seed, (ulong)(Weight.Length + 3) / 4, normal: false, -bound, 2 * bound);
        Weight.RequiresGrad = Bias.RequiresGrad = true;
    }

    public IEnumerable<Tensor> Parameters() => [Weight, Bias];

    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight, Bias);

    public void Dispose()
    {
        Weight.Dispose();
        Bias.Dispose();
    }
}
