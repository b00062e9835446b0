using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011, Random123). Element e of a draw
/// uses counter (e / 4 + offset, seed-independent high words) under the key (seed), lane e % 4, so every value
/// depends only on (seed, offset, e): not on the launch, the device or how the work is split.</summary>
public static class Philox
{
    public const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>Ten rounds of Philox4x32 on (c0..c3) under key (k0, k1).</summary>
    public static void Rounds(ref uint c0, ref uint c1, ref uint c2, ref uint c3, uint k0, uint k1)
    {
        for (int r = 0; r < 10; r++)
        {
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0, n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint)p1;
            c3 = (uint)p0;
            c0 = n0;
            c2 = n2;
            k0 += W0;
            k1 += W1;
        }
    }

    /// <summary>Uniform in [0, 1) with 24 random bits. (The int cast is exact below 2^24 and spares the GPU the
    /// uint -> double -> float conversion ILGPU emits for a uint.)</summary>
    public static float ToUniform(uint x) => (int)(x >> 8) * (1f / 16777216f);

    /// <summary>Uniform in (0, 1]: safe under a logarithm.</summary>
    public static float ToUniformOpen0(uint x) => ((int)(x >> 8) + 1) * (1f / 16777216f);

    static void DrawKernel(ArrayView<float> o, int n, ulong seed, ulong offset, int normal, float mean, float std)
    {
        int blocks = (n + 3) / 4;
        int stride = Grid.DimX * Group.DimX;
        for (int blk = Grid.GlobalIndex.X; blk < blocks; blk += stride)
        {
            ulong ctr = offset + (ulong)blk;
            uint c0 = (uint)ctr, c1 = (uint)(ctr >> 32), c2 = 0, c3 = 0;
            Rounds(ref c0, ref c1, ref c2, ref c3, (uint)seed, (uint)(seed >> 32));
            float v0, v1, v2, v3;
            if (normal != 0)
            {
                // Box-Muller: (c0, c1) -> two normals, (c2, c3) -> two more.
                float r0 = XMath.Sqrt(-2f * XMath.Log(ToUniformOpen0(c0))), t0 = 2f * XMath.PI * ToUniform(c1);
                float r1 = XMath.Sqrt(-2f * XMath.Log(ToUniformOpen0(c2))), t1 = 2f * XMath.PI * ToUniform(c3);
                v0 = r0 * XMath.Cos(t0); v1 = r0 * XMath.Sin(t0);
                v2 = r1 * XMath.Cos(t1); v3 = r1 * XMath.Sin(t1);
            }
            else
            {
                v0 = ToUniform(c0); v1 = ToUniform(c1); v2 = ToUniform(c2); v3 = ToUniform(c3);
            }
            int e = blk * 4;
            o[e] = mean + std * v0;
            if (e + 1 < n) o[e + 1] = mean + std * v1;
            if (e + 2 < n) o[e + 2] = mean + std * v2;
            if (e + 3 < n) o[e + 3] = mean + std * v3;
        }
    }

    /// <summary>Fills o with N(mean, std^2) (normal) or mean + std * U[0, 1) values. <paramref name="offset"/> counts
    /// blocks of four values: a later draw from the same seed that should not overlap starts at offset + ceil(n/4).</summary>
    public static void Draw(Accelerator acc, ArrayView<float> o, int n, ulong seed, ulong offset, bool normal, float mean = 0, float std = 1)
    {
        var k = KernelCache.Get(acc, "philox.draw",
            a => a.LoadStreamKernel<ArrayView<float>, int, ulong, ulong, int, float, float>(DrawKernel));
        k(Launch.GridStride(acc, (n + 3) / 4), o, n, seed, offset, normal ? 1 : 0, mean, std);
    }

    public static KernelCost Cost(long n, bool normal) => new((normal ? 30.0 : 1.0) * n + 40.0 * n / 4, 4.0 * n);

    public static class Reference
    {
        /// <summary>The same integer stream, transformed in float64.</summary>
        public static double[] Draw(int n, ulong seed, ulong offset, bool normal, double mean = 0, double std = 1)
        {
            var r = new double[n];
            for (int blk = 0; blk * 4 < n; blk++)
            {
                ulong ctr = offset + (ulong)blk;
                uint c0 = (uint)ctr, c1 = (uint)(ctr >> 32), c2 = 0, c3 = 0;
                Rounds(ref c0, ref c1, ref c2, ref c3, (uint)seed, (uint)(seed >> 32));
                double[] v;
                if (normal)
                {
                    double r0 = Math.Sqrt(-2 * Math.Log(((c0 >> 8) + 1) / 16777216.0)), t0 = 2 * Math.PI * (c1 >> 8) / 16777216.0;
                    double r1 = Math.Sqrt(-2 * Math.Log(((c2 >> 8) + 1) / 16777216.0)), t1 = 2 * Math.PI * (c3 >> 8) / 16777216.0;
                    v = [r0 * Math.Cos(t0), r0 * Math.Sin(t0), r1 * Math.Cos(t1), r1 * Math.Sin(t1)];
                }
                else v = [(c0 >> 8) / 16777216.0, (c1 >> 8) / 16777216.0, (c2 >> 8) / 16777216.0, (c3 >> 8) / 16777216.0];
                for (int l = 0; l < 4 && blk * 4 + l < n; l++) r[blk * 4 + l] = mean + std * v[l];
            }
            return r;
        }
    }
}
