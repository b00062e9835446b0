using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>The sinusoidal timestep embedding of guided-diffusion (cosines first) and the class-label embedding
/// lookup with its gradient.</summary>
public static class Embedding
{
    /// <summary>e[n, i] = cos(t_n f_i) for i &lt; half, sin(t_n f_(i-half)) for half &lt;= i &lt; 2 half, 0 for an odd last
    /// column; f_i = exp(-ln(10000) i / half). The argument is formed in fp32 as the reference does, so it differs from
    /// float64 by about |t| * 6e-8 (checked at 1e-4 relative).</summary>
    static void TimestepKernel(ArrayView<float> t, ArrayView<float> e, int n, int dim)
    {
        int half = dim / 2, total = n * dim, stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < total; idx += stride)
        {
            int row = idx / dim, i = idx % dim;
            if (i >= 2 * half) { e[idx] = 0f; continue; }
            int f = i < half ? i : i - half;
            float arg = t[row] * XMath.Exp(-9.210340371976184f * f / half);
            e[idx] = i < half ? XMath.Cos(arg) : XMath.Sin(arg);
        }
    }

    /// <summary>y[n, :] = table[label[n], :] (labels stored as floats).</summary>
    static void LookupKernel(ArrayView<float> table, ArrayView<float> labels, ArrayView<float> y, int n, int dim, int rows)
    {
        int total = n * dim, stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < total; idx += stride)
        {
            int r = (int)labels[idx / dim];
            y[idx] = r >= 0 && r < rows ? table[r * dim + idx % dim] : float.NaN;
        }
    }

    /// <summary>dtable[r, d] = sum of dy[n, d] over the n whose label is r: one thread per table entry, a fixed
    /// order over n, so no atomics and bitwise reproducible.</summary>
    static void LookupGradKernel(ArrayView<float> labels, ArrayView<float> dy, ArrayView<float> dtable, int n, int dim, int rows)
    {
        int total = rows * dim, stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < total; idx += stride)
        {
            int r = idx / dim, d = idx % dim;
            float acc = 0;
            for (int j = 0; j < n; j++)
                if ((int)labels[j] == r) acc += dy[j * dim + d];
            dtable[idx] = acc;
        }
    }

    public static void Timestep(Accelerator acc, ArrayView<float> t, ArrayView<float> e, int n, int dim)
    {
        var k = KernelCache.Get(acc, "embedding.timestep", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(TimestepKernel));
        k(Launch.GridStride(acc, (long)n * dim), t, e, n, dim);
    }

    public static void Lookup(Accelerator acc, ArrayView<float> table, ArrayView<float> labels, ArrayView<float> y, int n, int dim, int rows)
    {
        var k = KernelCache.Get(acc, "embedding.lookup",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(LookupKernel));
        k(Launch.GridStride(acc, (long)n * dim), table, labels, y, n, dim, rows);
    }

    public static void LookupGrad(Accelerator acc, ArrayView<float> labels, ArrayView<float> dy, ArrayView<float> dtable, int n, int dim, int rows)
    {
        var k = KernelCache.Get(acc, "embedding.lookup_grad",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(LookupGradKernel));
        k(Launch.GridStride(acc, (long)rows * dim), labels, dy, dtable, n, dim, rows);
    }

    public static KernelCost TimestepCost(long n, long dim) => new(20.0 * n * dim, 4.0 * (n + n * dim));
    public static KernelCost LookupCost(long n, long dim) => new(0, 8.0 * n * dim);

    public static class Reference
    {
        public static double[] Timestep(double[] t, int dim)
        {
            int half = dim / 2;
            var e = new double[t.Length * dim];
            for (int n = 0; n < t.Length; n++)
            for (int i = 0; i < half; i++)
            {
                double arg = t[n] * Math.Exp(-Math.Log(10000) * i / half);
                e[n * dim + i] = Math.Cos(arg);
                e[n * dim + half + i] = Math.Sin(arg);
            }
            return e;
        }

        public static double[] Lookup(double[] table, int[] labels, int dim)
            => labels.SelectMany(l => table.Skip(l * dim).Take(dim)).ToArray();
    }
}
