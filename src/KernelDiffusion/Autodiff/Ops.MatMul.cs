using ILGPU;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>op(a) op(b) where op transposes the last two axes when asked. a and b are [M,K]-like matrices or
    /// [B,M,K]-like batches; a matrix is shared across the other operand's batch.</summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        var d = Inputs("matmul", a, b);
        var (shape, gemm) = MatMulPlan(a, b, transA, transB);
        var o = Output(d, shape, "matmul");
        RunGemm(d, a.View, b.View, o.View, gemm);
        RecordReference(d, "matmul", o, v => Gemm.Reference.Run(v[0], v[1], null, gemm), a, b);
        if (d.Tape.ShouldRecord(a, b))
            d.Tape.Record("matmul", o, g =>
            {
                // C = op(A) op(B): d op(A) = dC op(B)^T, d op(B) = op(A)^T dC; a transposed operand takes the transpose.
                if (a.RequiresGrad)
                {
                    if (transA) MatMulGrad(d, a, b, g, transB, true);
                    else MatMulGrad(d, a, g, b, false, !transB);
                }
                if (b.RequiresGrad)
                {
                    if (transB) MatMulGrad(d, b, g, a, true, transA);
                    else MatMulGrad(d, b, a, g, !transA, false);
                }
            });
        return o;
    }

    /// <summary>The output shape and GEMM of op(a) op(b), or an error naming the operands.</summary>
    static (int[] Shape, GemmShape Gemm) MatMulPlan(Tensor a, Tensor b, bool transA, bool transB)
    {
        if (a.Rank is < 2 or > 3 || b.Rank is < 2 or > 3)
            throw new KdException($"matmul: '{a.Name}' {a.ShapeText} and '{b.Name}' {b.ShapeText} must be matrices or batches of matrices (rank 2 or 3)");
        int batchA = a.Rank == 3 ? a.Dim(0) : 1, batchB = b.Rank == 3 ? b.Dim(0) : 1;
        int m = transA ? a.Dim(-1) : a.Dim(-2), ka = transA ? a.Dim(-2) : a.Dim(-1);
        int kb = transB ? b.Dim(-1) : b.Dim(-2), n = transB ? b.Dim(-2) : b.Dim(-1);
        string ops = $"{a.ShapeText}{(transA ? "^T" : "")} x {b.ShapeText}{(transB ? "^T" : "")}";
        if (ka != kb) throw new KdException($"matmul: inner dimensions differ in '{a.Name}' x '{b.Name}': {ops}");
        if (a.Rank == 3 && b.Rank == 3 && batchA != batchB)
            throw new KdException($"matmul: batch sizes differ in '{a.Name}' x '{b.Name}': {ops}");
        int batch = Math.Max(batchA, batchB);
        var gemm = new GemmShape
        {
            Batch = batch, M = m, N = n, K = ka, TransA = transA ? 1 : 0, TransB = transB ? 1 : 0,
            StrideA = a.Rank == 3 ? m * ka : 0, StrideB = b.Rank == 3 ? ka * n : 0, StrideC = m * n, Alpha = 1, Beta = 0,
        };
        return (a.Rank == 3 || b.Rank == 3 ? [batch, m, n] : [m, n], gemm);
    }

    /// <summary>target's gradient += op(x) op(y): one GEMM straight into the gradient (or a temporary, Tape.ClearGrad);
    /// where target is a matrix shared across a batch, the batch of products is summed down to it.</summary>
    static void MatMulGrad(ComputeDevice d, Tensor target, Tensor x, Tensor y, bool transX, bool transY)
    {
        var (shape, gemm) = MatMulPlan(x, y, transX, transY);
        if (!shape.SequenceEqual(target.Shape))
        {
            AccumulateSummed(d, MatMul(x, y, transX, transY), target, 1, gOwned: true);
            return;
        }
        var sink = GradOutput(d, target, "matmul");
        RunGemm(d, x.View, y.View, sink.View, gemm);
        sink.Commit();
    }

    /// <summary>GEMMs run as MatMul runs its own (for the kernels built on GEMMs: attention v1, conv v12 and v13).</summary>
    public static GemmRunner GemmAsMatMul(ComputeDevice d) => (a, b, c, s) => RunGemm(d, a, b, c, s);

    /// <summary>Gemm at the forced version, else the tuned one (gemm=auto), else the accelerator's default.</summary>
    static void RunGemm(ComputeDevice d, ArrayView<float> a, ArrayView<float> b, ArrayView<float> o, GemmShape s)
    {
        var acc = d.Accelerator;
        d.RunVersion("gemm", d.Versions.Gemm, Gemm.Choose(acc, s),
            () => $"batch {s.Batch} {s.M}x{s.K}{(s.TransA == 1 ? "^T" : "")} x {s.K}x{s.N}{(s.TransB == 1 ? "^T" : "")} strides {s.StrideA}/{s.StrideB}{(s.Split > 0 ? $" heads {s.Split}" : "")}",
            () => Enum.GetValues<GemmVersion>().Where(v => Gemm.Tunable(acc, v)),
            v => Gemm.Run(acc, a, b, o, s, v), o);
    }

    /// <summary>y = x W^T + b for x [N, in], W [out, in] (PyTorch's layout), b [out].</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (x.Rank != 2 || weight.Rank != 2 || x.Dim(1) != weight.Dim(1))
            throw new KdException($"linear: input '{x.Name}' {x.ShapeText} does not fit weight '{weight.Name}' {weight.ShapeText} (want input [N, {weight.Dim(-1)}])");
        if (bias != null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new KdException($"linear: bias '{bias.Name}' {bias.ShapeText} does not match weight '{weight.Name}' {weight.ShapeText} (want [{weight.Dim(0)}])");
        var y = MatMul(x, weight, transB: true);
        return bias == null ? y : Add(y, bias);
    }
}
