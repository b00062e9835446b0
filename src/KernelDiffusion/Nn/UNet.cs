using KernelDiffusion.Autodiff;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>What UNetModel and EncoderUNetModel share: time_embed (Linear, SiLU, Linear on the sinusoidal
/// embedding), the optional label embedding, the input blocks (keeping their outputs for the skips) and the middle
/// block, built level by level exactly as guided-diffusion builds them, so parameter names and order match its
/// state_dict.</summary>
public abstract class DiffusionTrunk : Module
{
    readonly LinearLayer time0, time2;
    readonly EmbeddingLayer? labelEmb;
    readonly List<BlockSequence> inputBlocks = [];
    readonly BlockSequence middle;

    public ModelConfig Config { get; }
    /// <summary>Channel counts of the input blocks' outputs (the skips), in order.</summary>
    protected List<int> SkipChannels { get; } = [];
    /// <summary>Width and downsample rate after the middle block.</summary>
    protected int Channels { get; }
    protected int Rate { get; }

    protected int EmbDim => 4 * Config.ModelChannels;

    protected DiffusionTrunk(ComputeDevice d, ModelConfig c, bool labels) : base(d)
    {
        c.Validate();
        Config = c;
        var te = Child("time_embed", new ModuleList(d));
        time0 = te.Add(0, new LinearLayer(d, c.ModelChannels, EmbDim));
        time2 = te.Add(2, new LinearLayer(d, EmbDim, EmbDim));
        if (labels && c.NumClasses > 0) labelEmb = Child("label_emb", new EmbeddingLayer(d, c.NumClasses, EmbDim));

        var blocks = Child("input_blocks", new ModuleList(d));
        int ch = c.ModelChannels * c.ChannelMult[0], ds = 1;
        blocks.Add(0, inputBlocks.Add1(new BlockSequence(d))).Add(new Conv2dLayer(d, c.InChannels, ch, 3));
        SkipChannels.Add(ch);
        for (int level = 0; level < c.ChannelMult.Length; level++)
        {
            for (int i = 0; i < c.NumResBlocks; i++)
            {
                var seq = blocks.Add(inputBlocks.Count, inputBlocks.Add1(new BlockSequence(d)));
                int outCh = c.ModelChannels * c.ChannelMult[level];
                seq.Add(new ResBlock(d, ch, EmbDim, outCh, (float)c.Dropout, c.UseScaleShiftNorm));
                ch = outCh;
                if (c.AttentionResolutions.Contains(ds)) seq.Add(new AttentionBlock(d, ch, c.HeadsFor(ch), c.UseNewAttentionOrder));
                SkipChannels.Add(ch);
            }
            if (level == c.ChannelMult.Length - 1) continue;
            var down = blocks.Add(inputBlocks.Count, inputBlocks.Add1(new BlockSequence(d)));
            if (c.ResblockUpdown) down.Add(new ResBlock(d, ch, EmbDim, ch, (float)c.Dropout, c.UseScaleShiftNorm, Resampling.Down));
            else down.Add(new Downsample(d, ch, c.ConvResample));
            SkipChannels.Add(ch);
            ds *= 2;
        }
        middle = Child("middle_block", new BlockSequence(d));
        middle.Add(new ResBlock(d, ch, EmbDim, ch, (float)c.Dropout, c.UseScaleShiftNorm));
        middle.Add(new AttentionBlock(d, ch, c.HeadsFor(ch), c.UseNewAttentionOrder));
        middle.Add(new ResBlock(d, ch, EmbDim, ch, (float)c.Dropout, c.UseScaleShiftNorm));
        Channels = ch;
        Rate = ds;
    }

    /// <summary>The timestep embedding (plus the label embedding when the model has one).</summary>
    protected Tensor Embed(Tensor t, Tensor? y)
    {
        var emb = time2.Forward(Ops.Silu(time0.Forward(Ops.TimestepEmbedding(t, Config.ModelChannels))));
        return labelEmb == null || y == null ? emb : Ops.Add(emb, labelEmb.Forward(y));
    }

    /// <summary>Input and middle blocks: returns h and the skips.</summary>
    protected (Tensor H, List<Tensor> Skips) Encode(Tensor x, Tensor emb, ForwardState s)
    {
        var skips = new List<Tensor>();
        var h = x;
        for (int i = 0; i < inputBlocks.Count; i++)
        {
            h = inputBlocks[i].Forward(h, emb, s);
            skips.Add(h);
            Record(s, $"input_blocks.{i}", h);
        }
        h = middle.Forward(h, emb, s);
        Record(s, "middle_block", h);
        return (h, skips);
    }

    protected static void Record(ForwardState s, string name, Tensor t)
    {
        if (s.Trace != null) s.Trace[name] = t;
    }

    /// <summary>Refuses inputs that do not fit, before any work.</summary>
    protected void CheckInputs(Tensor x, Tensor t, Tensor? y)
    {
        string model = Config.IsClassifier ? "classifier" : "unet";
        if (x.Rank != 4 || x.Dim(1) != Config.InChannels)
            throw new KdException($"{model}: input '{x.Name}' {x.ShapeText} must be [N, {Config.InChannels}, H, W] (in_channels {Config.InChannels})");
        if (t.Rank != 1 || t.Dim(0) != x.Dim(0))
            throw new KdException($"{model}: timesteps '{t.Name}' {t.ShapeText} must be [{x.Dim(0)}], one per sample");
        if (labelEmb != null && (y == null || y.Rank != 1 || y.Dim(0) != x.Dim(0)))
            throw new KdException($"{model}: the model is class-conditional (num_classes {Config.NumClasses}): labels y [{x.Dim(0)}] are required");
        if (labelEmb == null && y != null)
            throw new KdException($"{model}: the model has no label embedding (num_classes 0), but labels were given");
    }
}

internal static class ListExtensions
{
    public static T Add1<T>(this List<T> list, T item)
    {
        list.Add(item);
        return item;
    }
}

/// <summary>guided-diffusion's UNetModel: trunk, output blocks (each concatenating the last kept skip), and
/// out = GN, SiLU, zero-initialised conv3x3.</summary>
public sealed class UNet : DiffusionTrunk
{
    readonly List<BlockSequence> outputBlocks = [];
    readonly GroupNormLayer outNorm;
    readonly Conv2dLayer outConv;

    public UNet(ComputeDevice d, ModelConfig c) : base(d, c with { Model = "unet" }, labels: true)
    {
        var blocks = Child("output_blocks", new ModuleList(d));
        var skips = new Stack<int>(SkipChannels);
        int ch = Channels, ds = Rate;
        for (int level = c.ChannelMult.Length - 1; level >= 0; level--)
            for (int i = 0; i <= c.NumResBlocks; i++)
            {
                var seq = blocks.Add(outputBlocks.Count, outputBlocks.Add1(new BlockSequence(d)));
                int outCh = c.ModelChannels * c.ChannelMult[level];
                seq.Add(new ResBlock(d, ch + skips.Pop(), EmbDim, outCh, (float)c.Dropout, c.UseScaleShiftNorm));
                ch = outCh;
                if (c.AttentionResolutions.Contains(ds)) seq.Add(new AttentionBlock(d, ch, c.HeadsFor(ch, upsample: true), c.UseNewAttentionOrder));
                if (level > 0 && i == c.NumResBlocks)
                {
                    if (c.ResblockUpdown) seq.Add(new ResBlock(d, ch, EmbDim, ch, (float)c.Dropout, c.UseScaleShiftNorm, Resampling.Up));
                    else seq.Add(new Upsample(d, ch, c.ConvResample));
                    ds /= 2;
                }
            }
        var o = Child("out", new ModuleList(d));
        outNorm = o.Add(0, new GroupNormLayer(d, ch));
        outConv = o.Add(2, new Conv2dLayer(d, ch, c.OutChannels, 3, zeroInit: true));
    }

    /// <summary>eps (and, with learn_sigma, the variance values) [N, out_channels, H, W] for x [N, C, H, W],
    /// timesteps t [N] on the original grid, labels y [N] for a class-conditional model.</summary>
    public Tensor Forward(Tensor x, Tensor t, Tensor? y, ForwardState? state = null)
    {
        var s = state ?? ForwardState.Eval();
        CheckInputs(x, t, y);
        var emb = Embed(t, y);
        var (h, skips) = Encode(x, emb, s);
        for (int i = 0; i < outputBlocks.Count; i++)
        {
            var skip = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            if (skip.Dim(2) != h.Dim(2) || skip.Dim(3) != h.Dim(3))
                throw new KdException($"unet: output block {i} meets a skip of {skip.ShapeText} with {h.ShapeText}: image sizes must halve evenly at every level");
            h = outputBlocks[i].Forward(Ops.Concat(h, skip, 1), emb, s);
            Record(s, $"output_blocks.{i}", h);
        }
        var o = outConv.Forward(outNorm.Forward(h, silu: true));
        Record(s, "out", o);
        return o;
    }
}

/// <summary>guided-diffusion's EncoderUNetModel, the noise-aware classifier: the trunk (no label embedding), then
/// "adaptive": GN, SiLU, global average pool, zero-initialised conv1x1; or "attention": GN, SiLU, AttentionPool2d.</summary>
public sealed class Classifier : DiffusionTrunk
{
    readonly GroupNormLayer outNorm;
    readonly Conv2dLayer? adaptiveConv;
    readonly AttentionPool? pool;

    public Classifier(ComputeDevice d, ModelConfig c) : base(d, c with { Model = "classifier" }, labels: false)
    {
        var o = Child("out", new ModuleList(d));
        outNorm = o.Add(0, new GroupNormLayer(d, Channels));
        if (c.Pool == "attention")
            pool = o.Add(2, new AttentionPool(d, c.FinalSize * c.FinalSize, Channels, Channels / c.NumHeadChannels, c.OutChannels));
        else adaptiveConv = o.Add(3, new Conv2dLayer(d, Channels, c.OutChannels, 1, zeroInit: true));
    }

    /// <summary>Logits [N, out_channels] for x [N, C, H, W] at timesteps t [N].</summary>
    public Tensor Forward(Tensor x, Tensor t, ForwardState? state = null) => ForwardWithFeatures(x, t, state).Logits;

    /// <summary>The logits with the penultimate features (the pooled vector before the last projection, [N, C]: what
    /// FID and precision/recall compare) and the trunk's last feature map [N, C, s, s] (spatial features, for sFID).</summary>
    public (Tensor Logits, Tensor Features, Tensor Spatial) ForwardWithFeatures(Tensor x, Tensor t, ForwardState? state = null)
    {
        var s = state ?? ForwardState.Eval();
        CheckInputs(x, t, null);
        if (pool != null && (x.Dim(2) != Config.ImageSize || x.Dim(3) != Config.ImageSize))
            throw new KdException($"classifier: input '{x.Name}' {x.ShapeText} must be {Config.ImageSize}x{Config.ImageSize} (image_size; the attention pool's positions are fixed)");
        var (trunk, _) = Encode(x, Embed(t, null), s);
        var h = outNorm.Forward(trunk, silu: true);
        Tensor logits, features;
        if (pool != null)
        {
            features = pool.Features(h);
            logits = pool.Project(features);
        }
        else
        {
            features = Ops.Mean(h, [2, 3], keepDims: true);
            var c = adaptiveConv!.Forward(features);
            logits = Ops.Reshape(c, c.Dim(0), c.Dim(1));
        }
        Record(s, "out", logits);
        return (logits, Ops.Reshape(features, features.Dim(0), features.Dim(1)), trunk);
    }
}

/// <summary>AttentionPool2d: tokens = [mean over positions, positions] + positional_embedding [C, T+1]; qkv_proj;
/// attention (new order, C / num_head_channels heads); c_proj; token 0.</summary>
public sealed class AttentionPool : Module
{
    readonly Tensor positional;
    readonly Conv1x1Layer qkv, proj;
    readonly int heads;

    public AttentionPool(ComputeDevice d, int positions, int channels, int heads, int outChannels) : base(d)
    {
        this.heads = heads;
        positional = Param("positional_embedding", [channels, positions + 1], Init.Normal(1f / MathF.Sqrt(channels)));
        qkv = Child("qkv_proj", new Conv1x1Layer(d, channels, 3 * channels));
        proj = Child("c_proj", new Conv1x1Layer(d, channels, outChannels));
    }

    public Tensor Forward(Tensor x) => Project(Features(x));

    /// <summary>Token 0 of the attention output [N, C, 1]: the pooled features before the projection.</summary>
    public Tensor Features(Tensor x)
    {
        int n = x.Dim(0), c = x.Dim(1);
        var xr = Ops.Reshape(x, n, c, x.Length / (n * c));
        var tokens = Ops.Add(Ops.Concat(Ops.Mean(xr, [2], keepDims: true), xr, 2), positional);
        return Ops.Slice(Ops.Attention(qkv.Forward(tokens), heads, newOrder: true), 2, 0, 1);
    }

    /// <summary>c_proj of the pooled token (a 1x1 convolution: projecting token 0 alone is projecting all and slicing).</summary>
    public Tensor Project(Tensor features)
    {
        var o = proj.Forward(features);
        return Ops.Reshape(o, o.Dim(0), o.Dim(1));
    }
}
