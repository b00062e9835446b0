using ILGPU;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>2-D convolution of x [N, Cin, H, W] with weight [Cout, Cin, R, R] (R odd) and bias [Cout], stride 1 or
    /// 2, zero padding (default R / 2: "same" for stride 1).</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride = 1, int? padding = null)
    {
        var d = bias == null ? Inputs("conv2d", x, weight) : Inputs("conv2d", x, weight, bias);
        if (x.Rank != 4 || weight.Rank != 4 || weight.Dim(2) != weight.Dim(3) || weight.Dim(1) != x.Dim(1))
            throw new KdException($"conv2d: input '{x.Name}' {x.ShapeText} does not fit weight '{weight.Name}' {weight.ShapeText} " +
                                  "(want x [N, Cin, H, W] and weight [Cout, Cin, R, R])");
        if (bias != null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new KdException($"conv2d: bias '{bias.Name}' {bias.ShapeText} does not match weight '{weight.Name}' {weight.ShapeText}");
        if (stride is < 1 or > 2) throw new KdException($"conv2d: stride {stride} is not supported (1 or 2)");
        int r = weight.Dim(2), pad = padding ?? r / 2;
        var g = ConvGeometry.Create(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), weight.Dim(0), r, stride, pad);
        if (g.Ho < 1 || g.Wo < 1) throw new KdException($"conv2d: input '{x.Name}' {x.ShapeText} is smaller than the {r}x{r} kernel");
        var y = Output(d, [g.N, g.Cout, g.Ho, g.Wo], "conv2d");
        RunConv(d, ConvPass.Forward, g, x.View, weight.View, x.View, (bias ?? weight).View, bias != null, y.View);
        RecordReference(d, "conv2d", y, v => Kernels.Conv2d.Reference.Forward(v[0], v[1], bias == null ? null : v[2], g), bias == null ? [x, weight] : [x, weight, bias]);
        if (d.Tape.ShouldRecord(bias == null ? [x, weight] : [x, weight, bias]))
            d.Tape.Record("conv2d", y, dy =>
            {
                if (x.RequiresGrad)
                {
                    var dx = GradOutput(d, x, "conv2d_input_grad");
                    RunConv(d, ConvPass.InputGrad, g, x.View, weight.View, dy.View, weight.View, false, dx.View);
                    dx.Commit();
                }
                if (weight.RequiresGrad)
                {
                    var dw = GradOutput(d, weight, "conv2d_weight_grad");
                    RunConv(d, ConvPass.WeightGrad, g, x.View, weight.View, dy.View, weight.View, false, dw.View);
                    dw.Commit();
                }
                if (bias is { RequiresGrad: true })
                    SumGradInto(d, dy.View, [g.N, g.Cout, g.Ho * g.Wo], [1, g.Cout, 1], bias);
            });
        return y;
    }

    /// <summary>One pass at the forced version, else the tuned one (conv=auto), else the accelerator's default. The
    /// weight gradient's split-k slices (v5 and later) and Winograd's transformed operands (v12, v13) get their scratch
    /// here, once per version tried; their GEMMs run as MatMul's do (the GEMM version KD_KERNELS names, or tuned with gemm=auto).</summary>
    static void RunConv(ComputeDevice d, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o)
    {
        var acc = d.Accelerator;
        Dictionary<ConvVersion, Tensor>? scratch = null;
        void Run(ConvVersion v)
        {
            long length = ScratchRoom(Kernels.Conv2d.ScratchLength(acc, g, pass, v));
            Tensor? room = null;
            if (length > 0 && !(scratch ??= []).TryGetValue(v, out room))
                scratch[v] = room = d.Temporary([(int)length], "conv2d_scratch");   // not Output: the profiler counts it as conv2d
            Kernels.Conv2d.Run(acc, pass, g, x, w, dy, bias, hasBias, o, v, room?.View ?? default, GemmAsMatMul(d));
        }
        d.RunVersion("conv", d.Versions.Conv, Kernels.Conv2d.Choose(acc, g),
            () => $"{pass.ToString().ToLowerInvariant()} N{g.N} C{g.Cin}->{g.Cout} {g.H}x{g.W} r{g.R} s{g.S} p{g.P}",
            () => Enum.GetValues<ConvVersion>().Where(v => Kernels.Conv2d.Tunable(acc, v) && Kernels.Conv2d.Covers(g, v)), Run, o);
        // Back to the pool now, not at the tape's reset: Winograd's is 4.5-8 times the activations (the stream orders its reuse).
        foreach (var t in scratch?.Values ?? Enumerable.Empty<Tensor>()) t.Release();
    }

    /// <summary>Scratch lengths above 1M floats rounded up to a power of two (up to 2^30), so that the pool, which caches by
    /// exact length, hands the same few buffers to every geometry and pass: Winograd's scratch is 4.5-8 times the
    /// activations, and a model's dozens of exact lengths held 10s of GB (the adm64 steps ran out of an H100's 80 GB).</summary>
    internal static long ScratchRoom(long length)
        => length <= 1 << 20 || length > 1 << 30 ? length : (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)length);

    /// <summary>Nearest 2x upsampling of [N, C, H, W].</summary>
    public static Tensor Upsample2x(Tensor x)
    {
        var d = Inputs("upsample", x);
        RequireRank("upsample", x, 4);
        int p = x.Dim(0) * x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        var y = Output(d, [x.Dim(0), x.Dim(1), 2 * h, 2 * w], "upsample");
        Resample.Up(d.Accelerator, x.View, y.View, p, h, w, 2 * h, 2 * w, 1);
        RecordReference(d, "upsample", y, v => Resample.Reference.Up(v[0], p, h, w), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("upsample", y, g =>
            {
                var dx = GradOutput(d, x, "upsample_grad");
                Resample.Pool(d.Accelerator, g.View, dx.View, p, 2 * h, 2 * w, 1);
                dx.Commit();
            });
        return y;
    }

    /// <summary>2x2 average pooling, stride 2, of [N, C, H, W] (odd sizes drop the last row / column, as PyTorch).</summary>
    public static Tensor AvgPool2x(Tensor x)
    {
        var d = Inputs("avg_pool", x);
        RequireRank("avg_pool", x, 4);
        int p = x.Dim(0) * x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        if (h < 2 || w < 2) throw new KdException($"avg_pool: input '{x.Name}' {x.ShapeText} is smaller than the 2x2 window");
        var y = Output(d, [x.Dim(0), x.Dim(1), h / 2, w / 2], "avg_pool");
        Resample.Pool(d.Accelerator, x.View, y.View, p, h, w, 0.25f);
        RecordReference(d, "avg_pool", y, v => Resample.Reference.Pool(v[0], p, h, w), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("avg_pool", y, g =>
            {
                var dx = GradOutput(d, x, "avg_pool_grad");
                Resample.Up(d.Accelerator, g.View, dx.View, p, h / 2, w / 2, h, w, 0.25f);
                dx.Commit();
            });
        return y;
    }

    static void RequireRank(string op, Tensor x, int rank)
    {
        if (x.Rank != rank) throw new KdException($"{op}: '{x.Name}' {x.ShapeText} must have rank {rank}");
    }
}
