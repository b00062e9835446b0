using KernelDiffusion.Autodiff;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>A layer of a TimestepEmbedSequential: it may use the timestep embedding.</summary>
public interface IBlockLayer
{
    Tensor Forward(Tensor h, Tensor emb, ForwardState s);
}

/// <summary>guided-diffusion's TimestepEmbedSequential: layers named 0, 1, ... applied in order.</summary>
public sealed class BlockSequence(ComputeDevice d) : Module(d)
{
    readonly List<IBlockLayer> layers = [];

    public T Add<T>(T layer) where T : Module, IBlockLayer
    {
        layers.Add(Child(layers.Count.ToString(), layer));
        return layer;
    }

    public Tensor Forward(Tensor h, Tensor emb, ForwardState s)
    {
        foreach (var l in layers) h = l.Forward(h, emb, s);
        return h;
    }
}

public enum Resampling { None, Up, Down }

/// <summary>ResBlock(ch -> out): in_layers (GN, SiLU, conv3x3), emb_layers (SiLU, Linear to out or 2 out),
/// out_layers (GN, SiLU, Dropout, zero-initialised conv3x3), skip (identity or conv1x1). With up or down, x and h are
/// resampled (nearest 2x / 2x2 average) between the in_layers' SiLU and conv. With use_scale_shift_norm the
/// embedding gives scale and shift after the out norm, fused into the GroupNorm kernel with the SiLU.</summary>
public sealed class ResBlock : Module, IBlockLayer
{
    readonly GroupNormLayer inNorm, outNorm;
    readonly Conv2dLayer inConv, outConv;
    readonly LinearLayer emb;
    readonly Conv2dLayer? skip;
    readonly Resampling resampling;
    readonly bool scaleShift;
    readonly float dropout;
    readonly int outChannels;

    public ResBlock(ComputeDevice d, int channels, int embChannels, int outChannels, float dropout, bool useScaleShiftNorm,
        Resampling resampling = Resampling.None) : base(d)
    {
        this.resampling = resampling;
        this.outChannels = outChannels;
        this.dropout = dropout;
        scaleShift = useScaleShiftNorm;
        var inLayers = Child("in_layers", new ModuleList(d));
        inNorm = inLayers.Add(0, new GroupNormLayer(d, channels));
        inConv = inLayers.Add(2, new Conv2dLayer(d, channels, outChannels, 3));
        emb = Child("emb_layers", new ModuleList(d)).Add(1, new LinearLayer(d, embChannels, useScaleShiftNorm ? 2 * outChannels : outChannels));
        var outLayers = Child("out_layers", new ModuleList(d));
        outNorm = outLayers.Add(0, new GroupNormLayer(d, outChannels));
        outConv = outLayers.Add(3, new Conv2dLayer(d, outChannels, outChannels, 3, zeroInit: true));
        if (outChannels != channels) skip = Child("skip_connection", new Conv2dLayer(d, channels, outChannels, 1));
    }

    Tensor Resample(Tensor x) => resampling switch
    {
        Resampling.Up => Ops.Upsample2x(x),
        Resampling.Down => Ops.AvgPool2x(x),
        _ => x,
    };

    public Tensor Forward(Tensor x, Tensor embedding, ForwardState s)
    {
        var h = inNorm.Forward(x, silu: true);
        if (resampling != Resampling.None)
        {
            h = Resample(h);
            x = Resample(x);
        }
        h = inConv.Forward(h);
        var e = emb.Forward(s.SiluOfEmbedding(embedding));
        if (scaleShift) h = outNorm.Forward(h, silu: true, scaleShift: e);
        else h = outNorm.Forward(Ops.Add(h, Ops.Reshape(e, e.Dim(0), outChannels, 1, 1)), silu: true);
        if (s.Training && dropout > 0)
        {
            h = Ops.Dropout(h, dropout, s.DropoutSeed, s.DropoutOffset);
            s.DropoutOffset += (ulong)(h.Length + 3) / 4;
        }
        h = outConv.Forward(h);
        return Ops.Add(skip?.Forward(x) ?? x, h);
    }
}

/// <summary>AttentionBlock(C): x + proj_out(attention(qkv(norm(x)))) over the H*W positions; proj_out starts at
/// zero.</summary>
public sealed class AttentionBlock : Module, IBlockLayer
{
    readonly GroupNormLayer norm;
    readonly Conv1x1Layer qkv, proj;
    readonly int heads;
    readonly bool newOrder;

    public AttentionBlock(ComputeDevice d, int channels, int heads, bool newOrder) : base(d)
    {
        this.heads = heads;
        this.newOrder = newOrder;
        norm = Child("norm", new GroupNormLayer(d, channels));
        qkv = Child("qkv", new Conv1x1Layer(d, channels, 3 * channels));
        proj = Child("proj_out", new Conv1x1Layer(d, channels, channels, zeroInit: true));
    }

    public Tensor Forward(Tensor x, Tensor emb, ForwardState s)
    {
        var shape = x.Shape;
        var xr = Ops.Reshape(x, shape[0], shape[1], x.Length / (shape[0] * shape[1]));
        var h = proj.Forward(Ops.Attention(qkv.Forward(norm.Forward(xr)), heads, newOrder));
        return Ops.Reshape(Ops.Add(xr, h), shape);
    }
}

/// <summary>Downsample with conv_resample: conv3x3 stride 2 (`op`); without: 2x2 average pool.</summary>
public sealed class Downsample : Module, IBlockLayer
{
    readonly Conv2dLayer? op;

    public Downsample(ComputeDevice d, int channels, bool useConv) : base(d)
    {
        if (useConv) op = Child("op", new Conv2dLayer(d, channels, channels, 3, stride: 2));
    }

    public Tensor Forward(Tensor h, Tensor emb, ForwardState s) => op?.Forward(h) ?? Ops.AvgPool2x(h);
}

/// <summary>Upsample: nearest 2x, then with conv_resample a conv3x3 (`conv`).</summary>
public sealed class Upsample : Module, IBlockLayer
{
    readonly Conv2dLayer? conv;

    public Upsample(ComputeDevice d, int channels, bool useConv) : base(d)
    {
        if (useConv) conv = Child("conv", new Conv2dLayer(d, channels, channels, 3));
    }

    public Tensor Forward(Tensor h, Tensor emb, ForwardState s)
    {
        var u = Ops.Upsample2x(h);
        return conv?.Forward(u) ?? u;
    }
}
