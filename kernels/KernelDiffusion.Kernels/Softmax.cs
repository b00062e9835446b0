using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Softmax and log-softmax over the last axis of a [rows, cols] matrix, their backward, and fused
/// cross-entropy (per-row loss from logits and integer labels stored as floats) with its backward. One thread
/// per row: class counts here are small (10 to 1000).</summary>
public static class Softmax
{
    static float RowMax(ArrayView<float> x, int o, int cols)
    {
        float max = x[o];
        for (int c = 1; c < cols; c++) max = XMath.Max(max, x[o + c]);
        return max;
    }

    /// <summary>sum exp(x - max) over a row: with the row's max subtracted, no term overflows.</summary>
    static float RowSumExp(ArrayView<float> x, int o, int cols, float max)
    {
        float sum = 0;
        for (int c = 0; c < cols; c++) sum += XMath.Exp(x[o + c] - max);
        return sum;
    }

    static void ForwardKernel(ArrayView<float> x, ArrayView<float> y, int rows, int cols, int log)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int o = r * cols;
            float max = RowMax(x, o, cols), sum = RowSumExp(x, o, cols, max);
            float lse = max + XMath.Log(sum);
            for (int c = 0; c < cols; c++)
                y[o + c] = log != 0 ? x[o + c] - lse : XMath.Exp(x[o + c] - lse);
        }
    }

    /// <summary>softmax: dx = y (g - sum(g y)); log-softmax: dx = g - exp(y) sum(g).</summary>
    static void BackwardKernel(ArrayView<float> y, ArrayView<float> g, ArrayView<float> dx, int rows, int cols, int log)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int o = r * cols;
            float dot = 0;
            for (int c = 0; c < cols; c++) dot += log != 0 ? g[o + c] : g[o + c] * y[o + c];
            for (int c = 0; c < cols; c++)
                dx[o + c] = log != 0 ? g[o + c] - XMath.Exp(y[o + c]) * dot : y[o + c] * (g[o + c] - dot);
        }
    }

    /// <summary>loss[r] = logsumexp(x[r]) - x[r, label[r]]; a label outside [0, cols) gives NaN, never a stray read.</summary>
    static void CrossEntropyKernel(ArrayView<float> x, ArrayView<float> labels, ArrayView<float> loss, int rows, int cols)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int o = r * cols;
            int label = (int)labels[r];
            float max = RowMax(x, o, cols), sum = RowSumExp(x, o, cols, max);
            loss[r] = label >= 0 && label < cols ? max + XMath.Log(sum) - x[o + label] : float.NaN;
        }
    }

    /// <summary>dx[r, c] = gloss[r] (softmax(x[r])[c] - [c == label[r]]).</summary>
    static void CrossEntropyBackwardKernel(ArrayView<float> x, ArrayView<float> labels, ArrayView<float> gloss, ArrayView<float> dx, int rows, int cols)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int o = r * cols;
            int label = (int)labels[r];
            float max = RowMax(x, o, cols), sum = RowSumExp(x, o, cols, max);
            float inv = 1f / sum, gr = gloss[r];
            for (int c = 0; c < cols; c++)
                dx[o + c] = gr * (XMath.Exp(x[o + c] - max) * inv - (c == label ? 1f : 0f));
        }
    }

    public static void Forward(Accelerator acc, ArrayView<float> x, ArrayView<float> y, int rows, int cols, bool log)
    {
        var k = KernelCache.Get(acc, "softmax.forward",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(ForwardKernel));
        k(Launch.GridStride(acc, (long)rows * cols), x, y, rows, cols, log ? 1 : 0);
    }

    public static void Backward(Accelerator acc, ArrayView<float> y, ArrayView<float> g, ArrayView<float> dx, int rows, int cols, bool log)
    {
        var k = KernelCache.Get(acc, "softmax.backward",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(BackwardKernel));
        k(Launch.GridStride(acc, (long)rows * cols), y, g, dx, rows, cols, log ? 1 : 0);
    }

    public static void CrossEntropy(Accelerator acc, ArrayView<float> x, ArrayView<float> labels, ArrayView<float> loss, int rows, int cols)
    {
        var k = KernelCache.Get(acc, "softmax.cross_entropy",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(CrossEntropyKernel));
        k(Launch.GridStride(acc, (long)rows * cols), x, labels, loss, rows, cols);
    }

    public static void CrossEntropyBackward(Accelerator acc, ArrayView<float> x, ArrayView<float> labels, ArrayView<float> gloss, ArrayView<float> dx, int rows, int cols)
    {
        var k = KernelCache.Get(acc, "softmax.cross_entropy_backward",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(CrossEntropyBackwardKernel));
        k(Launch.GridStride(acc, (long)rows * cols), x, labels, gloss, dx, rows, cols);
    }

    public static KernelCost ForwardCost(long rows, long cols) => new(5.0 * rows * cols, 8.0 * rows * cols);
    public static KernelCost BackwardCost(long rows, long cols) => new(4.0 * rows * cols, 12.0 * rows * cols);
    public static KernelCost CrossEntropyCost(long rows, long cols) => new(4.0 * rows * cols, 4.0 * (rows * cols + 2 * rows));
    public static KernelCost CrossEntropyBackwardCost(long rows, long cols) => new(6.0 * rows * cols, 4.0 * (2 * rows * cols + 2 * rows));

    public static class Reference
    {
        public static double[] Forward(double[] x, int rows, int cols, bool log)
        {
            var y = new double[x.Length];
            for (int r = 0; r < rows; r++)
            {
                double lse = LogSumExp(x, r * cols, cols);
                for (int c = 0; c < cols; c++) y[r * cols + c] = log ? x[r * cols + c] - lse : Math.Exp(x[r * cols + c] - lse);
            }
            return y;
        }

        public static double[] CrossEntropy(double[] x, int[] labels, int rows, int cols)
            => Enumerable.Range(0, rows).Select(r => LogSumExp(x, r * cols, cols) - x[r * cols + labels[r]]).ToArray();

        static double LogSumExp(double[] x, int o, int n)
        {
            double max = double.NegativeInfinity;
            for (int c = 0; c < n; c++) max = Math.Max(max, x[o + c]);
            double s = 0;
            for (int c = 0; c < n; c++) s += Math.Exp(x[o + c] - max);
            return max + Math.Log(s);
        }
    }
}
