using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>Softmax over the last axis.</summary>
    public static Tensor Softmax(Tensor x) => SoftmaxOp("softmax", x, log: false);

    /// <summary>Log-softmax over the last axis (classifier guidance differentiates log p(y | x_t) through it).</summary>
    public static Tensor LogSoftmax(Tensor x) => SoftmaxOp("log_softmax", x, log: true);

    static Tensor SoftmaxOp(string op, Tensor x, bool log)
    {
        var d = Inputs(op, x);
        int cols = x.Dim(-1), rows = x.Length / cols;
        var o = Output(d, x.Shape, op);
        Kernels.Softmax.Forward(d.Accelerator, x.View, o.View, rows, cols, log);
        RecordReference(d, op, o, v => Kernels.Softmax.Reference.Forward(v[0], rows, cols, log), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record(op, o, g =>
            {
                var dx = GradOutput(d, x, op + "_backward");
                Kernels.Softmax.Backward(d.Accelerator, o.View, g.View, dx.View, rows, cols, log);
                dx.Commit();
            });
        return o;
    }

    /// <summary>Per-row cross-entropy -log softmax(logits)[label] for logits [N, C] and labels [N] (from
    /// <see cref="ComputeDevice.Labels"/>). Reduce with Mean or Sum; no gradient flows to the labels.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        var d = Inputs("cross_entropy", logits, labels);
        if (logits.Rank != 2 || labels.Rank != 1 || labels.Dim(0) != logits.Dim(0))
            throw new KdException($"cross_entropy: logits '{logits.Name}' {logits.ShapeText} and labels '{labels.Name}' {labels.ShapeText} " +
                                  "do not match (want logits [N, C] and labels [N])");
        int rows = logits.Dim(0), cols = logits.Dim(1);
        var o = Output(d, [rows], "cross_entropy");
        Kernels.Softmax.CrossEntropy(d.Accelerator, logits.View, labels.View, o.View, rows, cols);
        RecordReference(d, "cross_entropy", o, v => Kernels.Softmax.Reference.CrossEntropy(v[0], v[1].Select(l => (int)l).ToArray(), rows, cols), logits, labels);
        if (d.Tape.ShouldRecord(logits))
            d.Tape.Record("cross_entropy", o, g =>
            {
                var dx = GradOutput(d, logits, "cross_entropy_backward");
                Kernels.Softmax.CrossEntropyBackward(d.Accelerator, logits.View, labels.View, g.View, dx.View, rows, cols);
                dx.Commit();
            });
        return o;
    }
}
