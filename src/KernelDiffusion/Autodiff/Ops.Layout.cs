using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>a and b joined along <paramref name="axis"/> (the UNet's skip concatenation is axis 1); every other
    /// dimension must agree.</summary>
    public static Tensor Concat(Tensor a, Tensor b, int axis)
    {
        var d = Inputs("concat", a, b);
        int ax = axis < 0 ? axis + a.Rank : axis;
        bool fits = a.Rank == b.Rank && ax >= 0 && ax < a.Rank && Enumerable.Range(0, a.Rank).All(i => i == ax || a.Dim(i) == b.Dim(i));
        if (!fits) throw new KdException($"concat: '{a.Name}' {a.ShapeText} and '{b.Name}' {b.ShapeText} do not join along axis {axis}");
        var shape = a.Shape;
        shape[ax] += b.Dim(ax);
        var o = Output(d, shape, "concat");
        int outer = shape.Take(ax).Aggregate(1, (p, v) => p * v);
        int ia = a.Length / outer, ib = b.Length / outer;
        Layout.Copy(d.Accelerator, a.View, o.View, outer, ia, ia + ib, 0, toWhole: true);
        Layout.Copy(d.Accelerator, b.View, o.View, outer, ib, ia + ib, ia, toWhole: true);
        RecordReference(d, "concat", o, v => Layout.Reference.Concat(v[0], v[1], outer, ia, ib), a, b);
        if (d.Tape.ShouldRecord(a, b))
            d.Tape.Record("concat", o, g =>
            {
                if (a.RequiresGrad) d.Tape.Accumulate(a, Slice(g, ax, 0, a.Dim(ax)), owned: true);
                if (b.RequiresGrad) d.Tape.Accumulate(b, Slice(g, ax, a.Dim(ax), b.Dim(ax)), owned: true);
            });
        return o;
    }

    /// <summary>Elements start .. start + length - 1 along <paramref name="axis"/>, as a new tensor.</summary>
    public static Tensor Slice(Tensor x, int axis, int start, int length)
    {
        var d = Inputs("slice", x);
        int ax = axis < 0 ? axis + x.Rank : axis;
        if (ax < 0 || ax >= x.Rank || start < 0 || length < 1 || start + length > x.Dim(ax))
            throw new KdException($"slice: [{start}, {start + length}) along axis {axis} is outside '{x.Name}' {x.ShapeText}");
        var shape = x.Shape;
        shape[ax] = length;
        var o = Output(d, shape, "slice");
        int outer = shape.Take(ax).Aggregate(1, (p, v) => p * v), inner = o.Length / outer, whole = x.Length / outer;
        int offset = start * (inner / length);
        Layout.Copy(d.Accelerator, o.View, x.View, outer, inner, whole, offset, toWhole: false);
        RecordReference(d, "slice", o, v => Layout.Reference.Slice(v[0], outer, inner, whole, offset), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("slice", o, g =>
            {
                var dx = GradOutput(d, x, "slice_grad");
                dx.Buffer.Fill(0);
                Layout.Copy(d.Accelerator, g.View, dx.View, outer, inner, whole, offset, toWhole: true);
                dx.Commit();
            });
        return o;
    }
}
