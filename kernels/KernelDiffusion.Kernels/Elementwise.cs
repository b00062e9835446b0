using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>o = alpha * (a op b); Broadcast copies alpha * a (b is ignored: pass a again).</summary>
public enum BinaryOp { Add = 0, Sub = 1, Mul = 2, Broadcast = 3 }

/// <summary>Affine: alpha x + beta; Clamp: x limited to [alpha, beta].</summary>
public enum UnaryOp { Affine = 0, Silu = 1, Fill = 2, Clamp = 3 }

/// <summary>Unary elementwise kernels: v1 one float per thread per iteration, v2 four (16-byte loads).</summary>
public enum ElementwiseVersion { V1Scalar = 1, V2Float4 = 2 }

/// <summary>Index map of a broadcast over four dimensions (shapes are right-aligned and padded with 1s on the
/// left, as in NumPy): output sizes D0..D3 and the element strides of each input, 0 where it is broadcast.</summary>
public struct Broadcast4
{
    public int D1, D2, D3;
    public int A0, A1, A2, A3;
    public int B0, B1, B2, B3;
    /// <summary>1 when a, b and the output have one shape: index directly, no division.</summary>
    public int Same;

    /// <summary>Pads a shape of rank at most 4 to four dimensions on the left.</summary>
    public static int[] Pad4(int[] shape)
    {
        var p = new[] { 1, 1, 1, 1 };
        for (int i = 0; i < shape.Length; i++) p[4 - shape.Length + i] = shape[i];
        return p;
    }

    /// <summary>The broadcast of <paramref name="a"/> and <paramref name="b"/>, or null when they do not broadcast.</summary>
    public static int[]? ResultShape(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1) return null;
            r[i] = Math.Max(da, db);
        }
        return r;
    }

    public static Broadcast4 Create(int[] a, int[] b, int[] outShape)
    {
        var o = Pad4(outShape);
        var sa = BroadcastStrides(Pad4(a), o);
        var sb = BroadcastStrides(Pad4(b), o);
        return new Broadcast4
        {
            D1 = o[1], D2 = o[2], D3 = o[3],
            A0 = sa[0], A1 = sa[1], A2 = sa[2], A3 = sa[3],
            B0 = sb[0], B1 = sb[1], B2 = sb[2], B3 = sb[3],
            Same = a.SequenceEqual(outShape) && b.SequenceEqual(outShape) ? 1 : 0,
        };
    }

    static int[] BroadcastStrides(int[] s, int[] o)
    {
        var st = new int[4];
        int stride = 1;
        for (int d = 3; d >= 0; d--)
        {
            st[d] = s[d] == 1 && o[d] != 1 ? 0 : stride;
            stride *= s[d];
        }
        return st;
    }
}

/// <summary>Elementwise kernels: add, sub, mul with broadcasting; affine (scale and shift), SiLU, fill; SiLU
/// backward. Each is a grid-stride loop, so it is correct for any launch configuration.</summary>
public static class Elementwise
{
    // ---- kernels ----

    static void BinaryKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> o, Broadcast4 m, int op, float alpha, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int ia = i, ib = i;
            if (m.Same == 0)
            {
                int i3 = i % m.D3, t = i / m.D3;
                int i2 = t % m.D2; t /= m.D2;
                int i1 = t % m.D1, i0 = t / m.D1;
                ia = i0 * m.A0 + i1 * m.A1 + i2 * m.A2 + i3 * m.A3;
                ib = i0 * m.B0 + i1 * m.B1 + i2 * m.B2 + i3 * m.B3;
            }
            float x = a[ia], y = b[ib];
            o[i] = alpha * (op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x);
        }
    }

    static void UnaryKernel(ArrayView<float> x, ArrayView<float> o, int op, float alpha, float beta, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            o[i] = op == 2 ? alpha : UnaryOf(op, x[i], alpha, beta);   // a fill reads nothing
        }
    }

    static float UnaryOf(int op, float v, float alpha, float beta)
        => op == 2 ? alpha : op == 0 ? alpha * v + beta : op == 3 ? XMath.Clamp(v, alpha, beta) : v / (1f + XMath.Exp(-v));

    /// <summary>v2: 16-byte loads and stores (four floats per thread per iteration), so each thread keeps four times the
    /// bytes in flight; the last n % 4 elements go one by one. Needs both views to start on a 16-byte boundary.</summary>
    static void UnaryV2Kernel(ArrayView<Float4> x4, ArrayView<Float4> o4, ArrayView<float> x, ArrayView<float> o, int op, float alpha, float beta, int n)
    {
        int stride = Grid.DimX * Group.DimX, n4 = n / 4;
        for (int i = Grid.GlobalIndex.X; i < n4; i += stride)
        {
            var v = x4[i];
            o4[i] = new Float4(UnaryOf(op, v.X, alpha, beta), UnaryOf(op, v.Y, alpha, beta), UnaryOf(op, v.Z, alpha, beta), UnaryOf(op, v.W, alpha, beta));
        }
        for (int i = n4 * 4 + Grid.GlobalIndex.X; i < n; i += stride) o[i] = UnaryOf(op, x[i], alpha, beta);
    }

    /// <summary>d SiLU(x)/dx = s (1 + x (1 - s)) with s = sigmoid(x).</summary>
    static void SiluBackwardKernel(ArrayView<float> x, ArrayView<float> g, ArrayView<float> dx, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            float v = x[i];
            float s = 1f / (1f + XMath.Exp(-v));
            dx[i] = g[i] * s * (1f + v * (1f - s));
        }
    }

    // ---- launchers ----

    public static void Binary(Accelerator acc, BinaryOp op, ArrayView<float> a, ArrayView<float> b, ArrayView<float> o, Broadcast4 m, int n, float alpha = 1)
    {
        var k = KernelCache.Get(acc, "elementwise.binary",
            x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, Broadcast4, int, float, int>(BinaryKernel));
        k(Launch.GridStride(acc, n), a, b, o, m, (int)op, alpha, n);
    }

    /// <summary>v2 (float4) by default on GPUs from 1024 elements: the caller's views must start on a 16-byte boundary,
    /// as every tensor's view does (a whole pool buffer). v1 on the CPU accelerator, where it is a plain loop.</summary>
    public static ElementwiseVersion Choose(Accelerator acc, int n) => !Launch.IsCpu(acc) && n >= 1024 ? ElementwiseVersion.V2Float4 : ElementwiseVersion.V1Scalar;

    public static void Unary(Accelerator acc, UnaryOp op, ArrayView<float> x, ArrayView<float> o, float alpha, float beta, int n,
        ElementwiseVersion version = ElementwiseVersion.V1Scalar)
    {
        if (version == ElementwiseVersion.V2Float4)
        {
            var k2 = KernelCache.Get(acc, "elementwise.unary_v2", a => a.LoadStreamKernel<ArrayView<Float4>, ArrayView<Float4>, ArrayView<float>,
                ArrayView<float>, int, float, float, int>(UnaryV2Kernel));
            k2(Launch.GridStride(acc, (n + 3) / 4), x.SubView(0, n / 4 * 4).Cast<Float4>(), o.SubView(0, n / 4 * 4).Cast<Float4>(), x, o, (int)op, alpha, beta, n);
            return;
        }
        var k = KernelCache.Get(acc, "elementwise.unary",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, float, float, int>(UnaryKernel));
        k(Launch.GridStride(acc, n), x, o, (int)op, alpha, beta, n);
    }

    public static void Fill(Accelerator acc, ArrayView<float> o, float value, int n) => Unary(acc, UnaryOp.Fill, o, o, value, 0, n);

    public static void SiluBackward(Accelerator acc, ArrayView<float> x, ArrayView<float> g, ArrayView<float> dx, int n)
    {
        var k = KernelCache.Get(acc, "elementwise.silu_backward",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(SiluBackwardKernel));
        k(Launch.GridStride(acc, n), x, g, dx, n);
    }

    // ---- costs: one FLOP per output (SiLU: about 4), reads of each input element once, one write ----

    public static KernelCost BinaryCost(long aLen, long bLen, long outLen) => new(outLen, 4.0 * (aLen + bLen + outLen));
    public static KernelCost UnaryCost(UnaryOp op, long n) => op switch
    {
        UnaryOp.Fill => new(0, 4.0 * n),
        UnaryOp.Silu => new(4.0 * n, 8.0 * n),
        _ => new(2.0 * n, 8.0 * n),
    };
    public static KernelCost SiluBackwardCost(long n) => new(7.0 * n, 12.0 * n);

    // ---- float64 references ----

    public static class Reference
    {
        public static double[] Binary(BinaryOp op, double[] a, int[] aShape, double[] b, int[] bShape, int[] outShape, double alpha = 1)
        {
            var m = Broadcast4.Create(aShape, bShape, outShape);
            var o4 = Broadcast4.Pad4(outShape);
            var r = new double[o4[0] * o4[1] * o4[2] * o4[3]];
            int i = 0;
            for (int i0 = 0; i0 < o4[0]; i0++)
            for (int i1 = 0; i1 < o4[1]; i1++)
            for (int i2 = 0; i2 < o4[2]; i2++)
            for (int i3 = 0; i3 < o4[3]; i3++, i++)
            {
                double x = a[i0 * m.A0 + i1 * m.A1 + i2 * m.A2 + i3 * m.A3];
                double y = b[i0 * m.B0 + i1 * m.B1 + i2 * m.B2 + i3 * m.B3];
                r[i] = alpha * op switch { BinaryOp.Add => x + y, BinaryOp.Sub => x - y, BinaryOp.Mul => x * y, _ => x };
            }
            return r;
        }

        public static double[] Affine(double[] x, double alpha, double beta) => x.Select(v => alpha * v + beta).ToArray();
        public static double[] Clamp(double[] x, double lo, double hi) => x.Select(v => Math.Min(Math.Max(v, lo), hi)).ToArray();
        public static double[] Silu(double[] x) => x.Select(Ref.Silu).ToArray();
        public static double[] SiluBackward(double[] x, double[] g)
            => x.Select((v, i) => { double s = Ref.Sigmoid(v); return g[i] * s * (1 + v * (1 - s)); }).ToArray();
    }
}
