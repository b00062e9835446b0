using KernelDiffusion.Autodiff;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>conv_nd(2, in, out, k): weight [out, in, k, k], bias [out]; "same" padding for stride 1, pad k/2 for
/// stride 2 (guided-diffusion's Downsample op).</summary>
public sealed class Conv2dLayer : Module, IBlockLayer
{
    readonly int stride;
    public Tensor Weight { get; }
    public Tensor Bias { get; }

    public Conv2dLayer(ComputeDevice d, int inChannels, int outChannels, int kernel, int stride = 1, bool zeroInit = false) : base(d)
    {
        this.stride = stride;
        var init = zeroInit ? Init.ZerosOr(Bound(inChannels * kernel * kernel)) : Init.Uniform(Bound(inChannels * kernel * kernel));
        Weight = Param("weight", [outChannels, inChannels, kernel, kernel], init);
        Bias = Param("bias", [outChannels], init);
    }

    public Tensor Forward(Tensor x) => Ops.Conv2d(x, Weight, Bias, stride);

    Tensor IBlockLayer.Forward(Tensor h, Tensor emb, ForwardState s) => Forward(h);
}

/// <summary>conv_nd(1, in, out, 1) over [N, C, T]: weight [out, in, 1], a per-position linear map, done as one
/// GEMM with the weight shared across the batch.</summary>
public sealed class Conv1x1Layer : Module
{
    public Tensor Weight { get; }
    public Tensor Bias { get; }

    public Conv1x1Layer(ComputeDevice d, int inChannels, int outChannels, bool zeroInit = false) : base(d)
    {
        var init = zeroInit ? Init.ZerosOr(Bound(inChannels)) : Init.Uniform(Bound(inChannels));
        Weight = Param("weight", [outChannels, inChannels, 1], init);
        Bias = Param("bias", [outChannels], init);
    }

    public Tensor Forward(Tensor x)
    {
        int o = Weight.Dim(0);
        return Ops.Add(Ops.MatMul(Ops.Reshape(Weight, o, Weight.Dim(1)), x), Ops.Reshape(Bias, o, 1));
    }
}

/// <summary>nn.Linear: weight [out, in], bias [out].</summary>
public sealed class LinearLayer : Module
{
    public Tensor Weight { get; }
    public Tensor Bias { get; }

    public LinearLayer(ComputeDevice d, int inFeatures, int outFeatures) : base(d)
    {
        Weight = Param("weight", [outFeatures, inFeatures], Init.Uniform(Bound(inFeatures)));
        Bias = Param("bias", [outFeatures], Init.Uniform(Bound(inFeatures)));
    }

    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight, Bias);
}

/// <summary>GroupNorm32: 32 groups, eps 1e-5, statistics in fp32; the forward fuses the SiLU and the scale-shift
/// that follow it in the reference.</summary>
public sealed class GroupNormLayer : Module
{
    public const int Groups = 32;
    public Tensor Weight { get; }
    public Tensor Bias { get; }

    public GroupNormLayer(ComputeDevice d, int channels) : base(d)
    {
        Weight = Param("weight", [channels], Init.Ones);
        Bias = Param("bias", [channels], Init.Zeros);
    }

    public Tensor Forward(Tensor x, bool silu = false, Tensor? scaleShift = null) => Ops.GroupNorm(x, Weight, Bias, Groups, scaleShift, silu);
}

/// <summary>nn.Embedding: weight [rows, dim] ~ N(0, 1).</summary>
public sealed class EmbeddingLayer : Module
{
    public Tensor Weight { get; }

    public EmbeddingLayer(ComputeDevice d, int rows, int dim) : base(d) => Weight = Param("weight", [rows, dim], Init.Normal(1));

    public Tensor Forward(Tensor labels) => Ops.Embedding(Weight, labels);
}
