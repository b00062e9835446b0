using ILGPU;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

/// <summary>Differentiable tensor operations. Each validates its inputs (alive, same device, shapes; finite when the
/// device checks numerics), launches its forward kernel into a temporary, and records its backward on the tape.
/// This file: shared checks, shapes and reductions; the other Ops.*.cs files hold one op family each.</summary>
public static partial class Ops
{
    static long outputCounter;

    /// <summary>Validates an op's inputs and returns their common device.</summary>
    static ComputeDevice Inputs(string op, params Tensor[] inputs)
    {
        var d = inputs[0].Device;
        foreach (var t in inputs)
        {
            if (t.IsReleased)
                throw new KdException($"{op}: input '{t.Name}' {t.ShapeText} was used after its buffer went back to the pool " +
                                      (t.IsPersistent ? "(it was disposed)" : "(the tape was reset)"));
            if (t.Device != d)
                throw new KdException($"{op}: '{inputs[0].Name}' ({d.Info.Id}) and '{t.Name}' ({t.Device.Info.Id}) belong to different opened devices");
        }
        if (d.CheckNumerics)
            foreach (var t in inputs) d.AssertFinite(op, t);
        // At the op's start (work before its output is allocated is charged to it too), with its inputs' shapes.
        d.Profiler?.Mark(d, op, shapes: string.Join(" ", inputs.Select(t => t.ShapeText)));
        return d;
    }

    /// <summary>Records the op's float64 reference when a reference graph is attached.</summary>
    static void RecordReference(ComputeDevice d, string op, Tensor output, Func<double[][], double[]> reference, params Tensor[] inputs)
        => d.Reference?.Add(op, output, inputs, reference);

    static Tensor Output(ComputeDevice d, int[] shape, string op)
    {
        d.Profiler?.Mark(d, op, part: true);
        return d.Temporary(shape, $"{op}#{Interlocked.Increment(ref outputCounter)}");
    }

    /// <summary>Where a backward writes <paramref name="target"/>'s gradient: its persistent gradient itself while that
    /// holds nothing yet (Tape.ClearGrad: a parameter after ZeroGrad), else a new temporary. Call Commit once written.</summary>
    static GradSink GradOutput(ComputeDevice d, Tensor target, string op)
    {
        if (d.Tape.ClearGrad(target) is not { } clear) return new GradSink(d.Tape, target, Output(d, target.Shape, op), false);
        d.Profiler?.Mark(d, op, part: true);
        return new GradSink(d.Tape, target, clear, true);
    }

    /// <summary>A gradient being written: Buffer has Target's shape; Commit accumulates it unless it was Target's own
    /// (and drops it when Target wants no gradient).</summary>
    readonly record struct GradSink(Tape Tape, Tensor Target, Tensor Buffer, bool Direct)
    {
        public ArrayView<float> View => Buffer.View;
        public void Commit()
        {
            if (!Direct) Tape.Accumulate(Target, Buffer, owned: true);
        }
    }

    /// <summary>target's gradient += scale * x (of shape <paramref name="from"/>) summed down to <paramref name="to"/>
    /// (from's rank, 1 where summed; same element count as target): one reduction, written straight into a clear
    /// gradient.</summary>
    static void SumGradInto(ComputeDevice d, ArrayView<float> x, int[] from, int[] to, Tensor target, float scale = 1)
    {
        var sink = GradOutput(d, target, "sum_to");
        RunSum(d, x, sink.View, ReducePlan.Create(from, to), target.Length, scale);
        sink.Commit();
    }

    /// <summary>target's gradient += scale * g summed down to target's shape (g broadcast from it).</summary>
    static void AccumulateSummed(ComputeDevice d, Tensor g, Tensor target, float scale, bool gOwned)
    {
        if (scale == 1 && g.Shape.SequenceEqual(target.Shape)) d.Tape.Accumulate(target, g, gOwned);
        else SumGradInto(d, g.View, g.Shape, Pad(target.Shape, g.Rank), target, scale);
    }

    static string Text(int[] shape) => "[" + string.Join(",", shape) + "]";

    /// <summary>A view of <paramref name="x"/> with another shape (same element count, no copy).</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var d = Inputs("reshape", x);
        var o = x.ViewAs(shape, $"reshape#{Interlocked.Increment(ref outputCounter)}");
        d.Tape.Own(o);
        RecordReference(d, "reshape", o, v => v[0], x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("reshape", o, g => d.Tape.Accumulate(x, Reshape(g, x.Shape), owned: true));
        return o;
    }

    // ---- reductions ----

    /// <summary>Sum over <paramref name="axes"/> (all when empty), times <paramref name="scale"/>; keepDims keeps
    /// them as size 1. Deterministic: no float atomics.</summary>
    public static Tensor Sum(Tensor x, int[]? axes = null, bool keepDims = false) => ReduceOp("sum", x, axes, keepDims, mean: false);

    public static Tensor Mean(Tensor x, int[]? axes = null, bool keepDims = false) => ReduceOp("mean", x, axes, keepDims, mean: true);

    static Tensor ReduceOp(string op, Tensor x, int[]? axes, bool keepDims, bool mean)
    {
        var d = Inputs(op, x);
        var shape = x.Shape;
        var reduce = new bool[shape.Length];
        if (axes == null || axes.Length == 0) Array.Fill(reduce, true);
        else
            foreach (var a0 in axes)
            {
                int a = a0 < 0 ? a0 + shape.Length : a0;
                if (a < 0 || a >= shape.Length)
                    throw new KdException($"{op}: axis {a0} is out of range for '{x.Name}' {x.ShapeText}");
                reduce[a] = true;
            }
        var kept = shape.Select((s, i) => reduce[i] ? 1 : s).ToArray();
        int count = x.Length / kept.Aggregate(1, (p, s) => p * s);
        var o = Output(d, kept, op);
        SumInto(d, x, o, mean ? 1f / count : 1f);
        RecordReference(d, op, o, v => Reduce.Reference.Sum(v[0], shape, kept, mean ? 1.0 / count : 1.0), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record(op, o, g => d.Tape.Accumulate(x, Expand(g, x.Shape, mean ? 1f / count : 1f), owned: true));
        if (keepDims) return o;
        var squeezed = shape.Where((_, i) => !reduce[i]).ToArray();
        return Reshape(o, squeezed.Length == 0 ? [1] : squeezed);
    }

    /// <summary>o = scale * (x summed down to o's shape).</summary>
    static void SumInto(ComputeDevice d, Tensor x, Tensor o, float scale)
    {
        var plan = ReducePlan.Create(x.Shape, Pad(o.Shape, x.Rank));
        RunSum(d, x.View, o.View, plan, o.Length, scale);
    }

    /// <summary>A reduction at the forced version, else the accelerator's default; v3's partial sums come from the pool
    /// and go back right after (the stream orders their reuse), as conv's scratch does.</summary>
    static void RunSum(ComputeDevice d, ArrayView<float> x, ArrayView<float> y, ReducePlan plan, int outCount, float scale)
    {
        var v = d.Versions.Reduce ?? Reduce.Choose(d.Accelerator, plan, outCount);
        long room = Reduce.PartialsLength(d.Accelerator, plan, outCount, v);
        var partials = room > 0 ? d.Temporary([(int)room], "sum_partials") : null;   // not Output: charged to the op
        Reduce.Sum(d.Accelerator, x, y, plan, outCount, scale, v, partials?.View ?? default);
        partials?.Release();
    }

    /// <summary>Left-pads a shape with 1s to <paramref name="rank"/>.</summary>
    static int[] Pad(int[] shape, int rank) => Enumerable.Repeat(1, Math.Max(0, rank - shape.Length)).Concat(shape).ToArray();

    /// <summary>Broadcasts g (shape with 1s where reduced, or fewer leading dims) to <paramref name="shape"/>, times scale.</summary>
    static Tensor Expand(Tensor g, int[] shape, float scale)
    {
        var gs = Pad(g.Shape, shape.Length);
        if (g.Shape.Length > shape.Length || gs.Length != shape.Length)
            throw new KdException($"expand: {g.ShapeText} cannot broadcast to {Text(shape)}");
        var o = Output(g.Device, shape, "expand");
        Elementwise.Binary(g.Device.Accelerator, BinaryOp.Broadcast, g.View, g.View, o.View, Broadcast4.Create(gs, gs, shape), o.Length, scale);
        return o;
    }
}
