using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>a + b with NumPy broadcasting (shapes right-aligned): per-channel bias as [C,1,1], per-sample as
    /// [N,1,1,1], per-sample-per-channel (timestep embedding) as [N,C,1,1].</summary>
    public static Tensor Add(Tensor a, Tensor b) => Binary("add", BinaryOp.Add, a, b);
    public static Tensor Sub(Tensor a, Tensor b) => Binary("sub", BinaryOp.Sub, a, b);
    public static Tensor Mul(Tensor a, Tensor b) => Binary("mul", BinaryOp.Mul, a, b);

    static Tensor Binary(string op, BinaryOp kind, Tensor a, Tensor b)
    {
        var d = Inputs(op, a, b);
        var shape = Broadcast4.ResultShape(a.Shape, b.Shape)
            ?? throw new KdException($"{op}: shapes {a.ShapeText} ('{a.Name}') and {b.ShapeText} ('{b.Name}') do not broadcast");
        if (shape.Length > 4) throw new KdException($"{op}: broadcast shape {Text(shape)} has more than 4 dimensions");
        var o = Output(d, shape, op);
        Elementwise.Binary(d.Accelerator, kind, a.View, b.View, o.View, Broadcast4.Create(a.Shape, b.Shape, shape), o.Length);
        RecordReference(d, op, o, v => Elementwise.Reference.Binary(kind, v[0], a.Shape, v[1], b.Shape, shape), a, b);
        if (d.Tape.ShouldRecord(a, b))
            d.Tape.Record(op, o, g =>
            {
                // g is read by nothing after this node (Tape.Propagate): the first input it passes to unchanged may keep it.
                if (a.RequiresGrad) AccumulateSummed(d, kind == BinaryOp.Mul ? Mul(g, b) : g, a, 1, gOwned: true);
                if (b.RequiresGrad)
                    AccumulateSummed(d, kind == BinaryOp.Mul ? Mul(g, a) : g, b, kind == BinaryOp.Sub ? -1 : 1,
                        gOwned: kind == BinaryOp.Mul || !a.RequiresGrad);
            });
        return o;
    }

    /// <summary>Tensor views start at a pool buffer's start (16-byte aligned), so the float4 version may run on them.</summary>
    internal static ElementwiseVersion UnaryVersion(ComputeDevice d, int n) => d.Versions.Elementwise ?? Elementwise.Choose(d.Accelerator, n);

    /// <summary>alpha * x + beta.</summary>
    public static Tensor Scale(Tensor x, float alpha, float beta = 0)
    {
        var d = Inputs("scale", x);
        var o = Output(d, x.Shape, "scale");
        Elementwise.Unary(d.Accelerator, UnaryOp.Affine, x.View, o.View, alpha, beta, x.Length, UnaryVersion(d, x.Length));
        RecordReference(d, "scale", o, v => Elementwise.Reference.Affine(v[0], alpha, beta), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("scale", o, g => d.Tape.Accumulate(x, alpha == 1 ? g : Scale(g, alpha), owned: true));
        return o;
    }

    /// <summary>x limited to [lo, hi]: the x0 clipping of samplers, which run under NoGrad. It has no backward, so
    /// recording it in a graph is refused rather than silently cutting the gradient.</summary>
    public static Tensor Clamp(Tensor x, float lo, float hi)
    {
        var d = Inputs("clamp", x);
        if (d.Tape.ShouldRecord(x))
            throw new KdException($"clamp: '{x.Name}' needs a gradient, but clamp has no backward (use it under NoGrad)");
        var o = Output(d, x.Shape, "clamp");
        Elementwise.Unary(d.Accelerator, UnaryOp.Clamp, x.View, o.View, lo, hi, x.Length, UnaryVersion(d, x.Length));
        RecordReference(d, "clamp", o, v => Elementwise.Reference.Clamp(v[0], lo, hi), x);
        return o;
    }

    /// <summary>SiLU(x) = x * sigmoid(x).</summary>
    public static Tensor Silu(Tensor x)
    {
        var d = Inputs("silu", x);
        var o = Output(d, x.Shape, "silu");
        Elementwise.Unary(d.Accelerator, UnaryOp.Silu, x.View, o.View, 0, 0, x.Length, UnaryVersion(d, x.Length));
        RecordReference(d, "silu", o, v => Elementwise.Reference.Silu(v[0]), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("silu", o, g =>
            {
                var dx = GradOutput(d, x, "silu_backward");
                Elementwise.SiluBackward(d.Accelerator, x.View, g.View, dx.View, x.Length);
                dx.Commit();
            });
        return o;
    }

    /// <summary>Standard normal (or N(mean, std^2)) values from Philox: value e depends only on (seed, offset, e).</summary>
    public static Tensor Normal(ComputeDevice d, int[] shape, ulong seed, ulong offset = 0, float mean = 0, float std = 1)
    {
        var o = Output(d, shape, "normal");
        Philox.Draw(d.Accelerator, o.View, o.Length, seed, offset, normal: true, mean, std);
        return o;
    }

    /// <summary>Uniform values in [low, high) from Philox.</summary>
    public static Tensor Uniform(ComputeDevice d, int[] shape, ulong seed, ulong offset = 0, float low = 0, float high = 1)
    {
        var o = Output(d, shape, "uniform");
        Philox.Draw(d.Accelerator, o.View, o.Length, seed, offset, normal: false, low, high - low);
        return o;
    }
}
