using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Inverted dropout with a counter-based mask: element i is kept when its Philox uniform (seed, offset,
/// i) is at least p, and scaled by 1/(1-p). The backward recomputes the same mask from the seed, so no mask is
/// stored.</summary>
public static class Dropout
{
    static void Kernel(ArrayView<float> x, ArrayView<float> y, int n, float p, ulong seed, ulong offset)
    {
        int blocks = (n + 3) / 4, stride = Grid.DimX * Group.DimX;
        float scale = 1f / (1f - p);
        for (int blk = Grid.GlobalIndex.X; blk < blocks; blk += stride)
        {
            ulong ctr = offset + (ulong)blk;
            uint c0 = (uint)ctr, c1 = (uint)(ctr >> 32), c2 = 0, c3 = 0;
            Philox.Rounds(ref c0, ref c1, ref c2, ref c3, (uint)seed, (uint)(seed >> 32));
            int e = blk * 4;
            y[e] = Philox.ToUniform(c0) >= p ? x[e] * scale : 0f;
            if (e + 1 < n) y[e + 1] = Philox.ToUniform(c1) >= p ? x[e + 1] * scale : 0f;
            if (e + 2 < n) y[e + 2] = Philox.ToUniform(c2) >= p ? x[e + 2] * scale : 0f;
            if (e + 3 < n) y[e + 3] = Philox.ToUniform(c3) >= p ? x[e + 3] * scale : 0f;
        }
    }

    /// <summary>y = mask(x) / (1 - p); the same call on dy gives dx.</summary>
    public static void Apply(Accelerator acc, ArrayView<float> x, ArrayView<float> y, int n, float p, ulong seed, ulong offset)
    {
        var k = KernelCache.Get(acc, "dropout", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, float, ulong, ulong>(Kernel));
        k(Launch.GridStride(acc, (n + 3) / 4), x, y, n, p, seed, offset);
    }

    public static KernelCost Cost(long n) => new(12.0 * n, 8.0 * n);

    public static class Reference
    {
        public static double[] Apply(double[] x, double p, ulong seed, ulong offset)
        {
            var u = Philox.Reference.Draw(x.Length, seed, offset, normal: false);
            return x.Select((v, i) => u[i] >= p ? v / (1 - p) : 0).ToArray();
        }
    }
}
