using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Geometry of a 2-D convolution over NCHW input x [N, Cin, H, W] with weight [Cout, Cin, R, R],
/// stride S and zero padding P, giving y [N, Cout, Ho, Wo].</summary>
public struct ConvGeometry
{
    public int N, Cin, H, W, Cout, R, S, P, Ho, Wo;

    public static ConvGeometry Create(int n, int cin, int h, int w, int cout, int kernel, int stride, int pad) => new()
    {
        N = n, Cin = cin, H = h, W = w, Cout = cout, R = kernel, S = stride, P = pad,
        Ho = (h + 2 * pad - kernel) / stride + 1, Wo = (w + 2 * pad - kernel) / stride + 1,
    };

    /// <summary>x[n, ci, oh*S - P + kh, ow*S - P + kw], 0 in the padding.</summary>
    public readonly float Input(ArrayView<float> x, int n, int ci, int oh, int ow, int kh, int kw)
    {
        int ih = oh * S - P + kh, iw = ow * S - P + kw;
        return ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((n * Cin + ci) * H + ih) * W + iw] : 0f;
    }

    /// <summary>dy[n, co, oh, ow] for the output position that input (ih, iw) meets at tap (kh, kw), 0 when none.</summary>
    public readonly float OutputGrad(ArrayView<float> dy, int n, int co, int ih, int iw, int kh, int kw)
    {
        int th = ih + P - kh, tw = iw + P - kw;
        if (th < 0 || tw < 0 || th % S != 0 || tw % S != 0) return 0f;
        int oh = th / S, ow = tw / S;
        return oh < Ho && ow < Wo ? dy[((n * Cout + co) * Ho + oh) * Wo + ow] : 0f;
    }
}

public enum ConvPass { Forward = 0, InputGrad = 1, WeightGrad = 2 }

public enum ConvVersion { V1Direct = 1, V2Tiled = 2, V3Planes = 3 }

/// <summary>2-D convolution (any odd square kernel with padding, stride 1 or 2; the UNet uses 3x3 pad 1 and 1x1)
/// as an implicit GEMM C[M, N] = sum_k A[M, K] B[K, N] whose operands are gathered from the tensors, so one
/// kernel serves three passes:
///   forward      y[n,co,oh,ow] = b[co] + sum_(ci,kh,kw) w[co,ci,kh,kw] x[n,ci,oh*S-P+kh,ow*S-P+kw]
///                M = Cout, N = batch*Ho*Wo, K = Cin*R*R
///   input grad   dx[n,ci,h,w] = sum_(co,kh,kw) w[co,ci,kh,kw] dy[n,co,(h+P-kh)/S,(w+P-kw)/S]   (where exact)
///                M = Cin, N = batch*H*W, K = Cout*R*R
///   weight grad  dw[co,ci,kh,kw] = sum_(n,oh,ow) dy[n,co,oh,ow] x[n,ci,oh*S-P+kh,ow*S-P+kw]
///                M = Cout, N = Cin*R*R, K = batch*Ho*Wo
/// The bias gradient is a sum of dy over (n, oh, ow): Reduce does it. v1: one output per thread in a
/// grid-stride loop, no barriers (the CPU accelerator's form). v2: T x T shared-memory tiles, as Gemm v2.
/// Output elements a pass does not reach (none, for valid geometry) are not written.</summary>
public static class Conv2d
{
    const int MaxTile = 16;

    public static (int M, int N, int K) Dims(ConvGeometry g, ConvPass pass) => pass switch
    {
        ConvPass.Forward => (g.Cout, g.N * g.Ho * g.Wo, g.Cin * g.R * g.R),
        ConvPass.InputGrad => (g.Cin, g.N * g.H * g.W, g.Cout * g.R * g.R),
        _ => (g.Cout, g.Cin * g.R * g.R, g.N * g.Ho * g.Wo),
    };

    /// <summary>A[i, k]: the weight for forward and input grad, dy for weight grad.</summary>
    static float LoadA(ArrayView<float> w, ArrayView<float> src, ConvGeometry g, int pass, int i, int k)
    {
        int rr = g.R * g.R;
        if (pass == 0) return w[i * g.Cin * rr + k];                     // w[co=i, (ci,kh,kw)=k]
        if (pass == 1) return w[((k / rr) * g.Cin + i) * rr + k % rr];   // w[co=k/rr, ci=i, tap=k%rr]
        int hw = g.Ho * g.Wo;                                            // dy[n, co=i, (oh,ow)], k = (n, oh, ow)
        return src[((k / hw) * g.Cout + i) * hw + k % hw];
    }

    /// <summary>B[k, j]: the gathered input for forward and weight grad, the gathered dy for input grad.</summary>
    static float LoadB(ArrayView<float> x, ArrayView<float> dy, ConvGeometry g, int pass, int k, int j)
    {
        int rr = g.R * g.R;
        if (pass == 0)
        {
            int ci = k / rr, tap = k % rr, hw = g.Ho * g.Wo, n = j / hw, o = j % hw;
            return g.Input(x, n, ci, o / g.Wo, o % g.Wo, tap / g.R, tap % g.R);
        }
        if (pass == 1)
        {
            int co = k / rr, tap = k % rr, hw = g.H * g.W, n = j / hw, o = j % hw;
            return g.OutputGrad(dy, n, co, o / g.W, o % g.W, tap / g.R, tap % g.R);
        }
        int hwo = g.Ho * g.Wo, nn = k / hwo, oo = k % hwo, c = j / rr, t = j % rr;
        return g.Input(x, nn, c, oo / g.Wo, oo % g.Wo, t / g.R, t % g.R);
    }

    static void Store(ArrayView<float> o, ArrayView<float> bias, ConvGeometry g, int pass, int hasBias, int i, int j, float v)
    {
        if (pass == 0)
        {
            int hw = g.Ho * g.Wo;
            o[((j / hw) * g.Cout + i) * hw + j % hw] = hasBias != 0 ? v + bias[i] : v;
        }
        else if (pass == 1)
        {
            int hw = g.H * g.W;
            o[((j / hw) * g.Cin + i) * hw + j % hw] = v;
        }
        else o[i * g.Cin * g.R * g.R + j] = v;
    }

    // x: the input (forward, weight grad); dy: the output gradient (input grad, weight grad); w: the weight.
    static void V1Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < m * n; idx += stride)
        {
            int i = idx / n, j = idx % n;
            float acc = 0;
            for (int k = 0; k < kk; k++) acc += LoadA(w, dy, g, pass, i, k) * LoadB(x, dy, g, pass, k, j);
            Store(o, bias, g, pass, hasBias, i, j, acc);
        }
    }

    static void V2Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tile)
    {
        var at = SharedMemory.Allocate<float>(MaxTile * MaxTile);
        var bt = SharedMemory.Allocate<float>(MaxTile * MaxTile);
        int tx = Group.IdxX % tile, ty = Group.IdxX / tile;
        int tilesN = (n + tile - 1) / tile, tiles = ((m + tile - 1) / tile) * tilesN;
        for (int t = Grid.IdxX; t < tiles; t += Grid.DimX)
        {
            int row = (t / tilesN) * tile + ty, col = (t % tilesN) * tile + tx;
            float acc = 0;
            for (int k0 = 0; k0 < kk; k0 += tile)
            {
                at[ty * tile + tx] = row < m && k0 + tx < kk ? LoadA(w, dy, g, pass, row, k0 + tx) : 0f;
                bt[ty * tile + tx] = k0 + ty < kk && col < n ? LoadB(x, dy, g, pass, k0 + ty, col) : 0f;
                Group.Barrier();
                for (int k = 0; k < tile; k++) acc += at[ty * tile + k] * bt[k * tile + tx];
                Group.Barrier();
            }
            if (row < m && col < n) Store(o, bias, g, pass, hasBias, row, col, acc);
        }
    }

    // ---- v3: one plane per thread, for the CPU accelerator ----
    // Each unit of work owns one output plane (forward: (n, co); input grad: (n, ci)) or one filter (weight grad:
    // (co, ci)), so it may accumulate in place; the innermost loop walks a row with no division. Few, long units
    // suit the CPU accelerator (one thread per core), not a GPU.

    /// <summary>First and last output column whose input column ow*S - P + kw lies inside [0, W); lo &gt; hi when none.</summary>
    static int ColumnLo(ConvGeometry g, int kw) => g.P - kw <= 0 ? 0 : (g.P - kw + g.S - 1) / g.S;
    static int ColumnHi(ConvGeometry g, int kw) => g.W - 1 + g.P - kw < 0 ? -1 : XMin(g.Wo - 1, (g.W - 1 + g.P - kw) / g.S);
    static int XMin(int a, int b) => a < b ? a : b;

    static void V3ForwardKernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvGeometry g, int hasBias)
    {
        int units = g.N * g.Cout, plane = g.Ho * g.Wo, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int n = u / g.Cout, co = u % g.Cout, yb = u * plane;
            float b0 = hasBias != 0 ? bias[co] : 0f;
            for (int i = 0; i < plane; i++) y[yb + i] = b0;
            for (int ci = 0; ci < g.Cin; ci++)
                for (int kh = 0; kh < g.R; kh++)
                    for (int kw = 0; kw < g.R; kw++)
                    {
                        float wv = w[((co * g.Cin + ci) * g.R + kh) * g.R + kw];
                        int lo = ColumnLo(g, kw), hi = ColumnHi(g, kw);
                        for (int oh = 0; oh < g.Ho; oh++)
                        {
                            int ih = oh * g.S - g.P + kh;
                            if (ih < 0 || ih >= g.H) continue;
                            int xr = ((n * g.Cin + ci) * g.H + ih) * g.W - g.P + kw, yr = yb + oh * g.Wo;
                            for (int ow = lo; ow <= hi; ow++) y[yr + ow] += wv * x[xr + ow * g.S];
                        }
                    }
        }
    }

    static void V3InputGradKernel(ArrayView<float> w, ArrayView<float> dy, ArrayView<float> dx, ConvGeometry g)
    {
        int units = g.N * g.Cin, plane = g.H * g.W, oplane = g.Ho * g.Wo, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int n = u / g.Cin, ci = u % g.Cin, xb = u * plane;
            for (int i = 0; i < plane; i++) dx[xb + i] = 0f;
            for (int co = 0; co < g.Cout; co++)
                for (int kh = 0; kh < g.R; kh++)
                    for (int kw = 0; kw < g.R; kw++)
                    {
                        float wv = w[((co * g.Cin + ci) * g.R + kh) * g.R + kw];
                        int lo = ColumnLo(g, kw), hi = ColumnHi(g, kw);
                        for (int oh = 0; oh < g.Ho; oh++)
                        {
                            int ih = oh * g.S - g.P + kh;
                            if (ih < 0 || ih >= g.H) continue;
                            int xr = xb + ih * g.W - g.P + kw, yr = (n * g.Cout + co) * oplane + oh * g.Wo;
                            for (int ow = lo; ow <= hi; ow++) dx[xr + ow * g.S] += wv * dy[yr + ow];
                        }
                    }
        }
    }

    static void V3WeightGradKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw, ConvGeometry g)
    {
        int units = g.Cout * g.Cin, oplane = g.Ho * g.Wo, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int co = u / g.Cin, ci = u % g.Cin;
            for (int kh = 0; kh < g.R; kh++)
                for (int kw = 0; kw < g.R; kw++)
                {
                    int lo = ColumnLo(g, kw), hi = ColumnHi(g, kw);
                    float acc = 0;
                    for (int n = 0; n < g.N; n++)
                        for (int oh = 0; oh < g.Ho; oh++)
                        {
                            int ih = oh * g.S - g.P + kh;
                            if (ih < 0 || ih >= g.H) continue;
                            int xr = ((n * g.Cin + ci) * g.H + ih) * g.W - g.P + kw, yr = (n * g.Cout + co) * oplane + oh * g.Wo;
                            for (int ow = lo; ow <= hi; ow++) acc += dy[yr + ow] * x[xr + ow * g.S];
                        }
                    dw[(u * g.R + kh) * g.R + kw] = acc;
                }
        }
    }

    public static ConvVersion Choose(Accelerator acc) => Launch.IsCpu(acc) ? ConvVersion.V3Planes : ConvVersion.V2Tiled;

    /// <summary>Runs one pass. Unused views (dy for forward, x for input grad, bias without one) may be any view.</summary>
    public static void Run(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o, ConvVersion? version = null)
    {
        var (m, n, kk) = Dims(g, pass);
        var v = version ?? Choose(acc);
        if (v == ConvVersion.V3Planes)
        {
            RunV3(acc, pass, g, x, w, dy, bias, hasBias, o);
            return;
        }
        if (v == ConvVersion.V1Direct)
        {
            var k = KernelCache.Get(acc, "conv2d.v1", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ConvGeometry, int, int, int, int, int>(V1Kernel));
            k(Launch.GridStride(acc, (long)m * n), x, w, dy, bias, o, g, (int)pass, hasBias ? 1 : 0, m, n, kk);
        }
        else
        {
            var k = KernelCache.Get(acc, "conv2d.v2", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ConvGeometry, int, int, int, int, int, int>(V2Kernel));
            int tile = MaxTile;
            while (tile * tile > acc.MaxNumThreadsPerGroup) tile /= 2;
            long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
            int grid = (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 16L);
            k(new KernelConfig(Math.Max(1, grid), tile * tile), x, w, dy, bias, o, g, (int)pass, hasBias ? 1 : 0, m, n, kk, tile);
        }
    }

    static void RunV3(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o)
    {
        if (pass == ConvPass.Forward)
        {
            var k = KernelCache.Get(acc, "conv2d.v3.forward", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ConvGeometry, int>(V3ForwardKernel));
            k(Launch.GridStride(acc, (long)g.N * g.Cout * g.Ho * g.Wo), x, w, bias, o, g, hasBias ? 1 : 0);
        }
        else if (pass == ConvPass.InputGrad)
        {
            var k = KernelCache.Get(acc, "conv2d.v3.input_grad", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ConvGeometry>(V3InputGradKernel));
            k(Launch.GridStride(acc, (long)g.N * g.Cin * g.H * g.W), w, dy, o, g);
        }
        else
        {
            var k = KernelCache.Get(acc, "conv2d.v3.weight_grad", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ConvGeometry>(V3WeightGradKernel));
            k(Launch.GridStride(acc, (long)g.Cout * g.Cin * g.N * g.Ho * g.Wo), x, dy, o, g);
        }
    }

    /// <summary>2 M N K FLOPs; the fewest bytes: each operand tensor read once and the result written once.</summary>
    public static KernelCost Cost(ConvGeometry g, ConvPass pass)
    {
        var (m, n, k) = Dims(g, pass);
        double x = (double)g.N * g.Cin * g.H * g.W, y = (double)g.N * g.Cout * g.Ho * g.Wo, w = (double)g.Cout * g.Cin * g.R * g.R;
        double bytes = 4 * pass switch { ConvPass.Forward => x + w + y + g.Cout, ConvPass.InputGrad => y + w + x, _ => y + x + w };
        return new(2.0 * m * n * k, bytes);
    }

    public static class Reference
    {
        public static double[] Forward(double[] x, double[] w, double[]? b, ConvGeometry g)
        {
            var y = new double[g.N * g.Cout * g.Ho * g.Wo];
            for (int n = 0; n < g.N; n++)
            for (int co = 0; co < g.Cout; co++)
            for (int oh = 0; oh < g.Ho; oh++)
            for (int ow = 0; ow < g.Wo; ow++)
            {
                double acc = b?[co] ?? 0;
                for (int ci = 0; ci < g.Cin; ci++)
                for (int kh = 0; kh < g.R; kh++)
                for (int kw = 0; kw < g.R; kw++)
                {
                    int ih = oh * g.S - g.P + kh, iw = ow * g.S - g.P + kw;
                    if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                        acc += w[((co * g.Cin + ci) * g.R + kh) * g.R + kw] * x[((n * g.Cin + ci) * g.H + ih) * g.W + iw];
                }
                y[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow] = acc;
            }
            return y;
        }

        /// <summary>dx and dw by scattering dy back through every tap (the adjoint of Forward).</summary>
        public static (double[] Dx, double[] Dw) Backward(double[] x, double[] w, double[] dy, ConvGeometry g)
        {
            var dx = new double[x.Length];
            var dw = new double[w.Length];
            for (int n = 0; n < g.N; n++)
            for (int co = 0; co < g.Cout; co++)
            for (int oh = 0; oh < g.Ho; oh++)
            for (int ow = 0; ow < g.Wo; ow++)
            {
                double d = dy[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow];
                for (int ci = 0; ci < g.Cin; ci++)
                for (int kh = 0; kh < g.R; kh++)
                for (int kw = 0; kw < g.R; kw++)
                {
                    int ih = oh * g.S - g.P + kh, iw = ow * g.S - g.P + kw;
                    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                    int xi = ((n * g.Cin + ci) * g.H + ih) * g.W + iw, wi = ((co * g.Cin + ci) * g.R + kh) * g.R + kw;
                    dx[xi] += w[wi] * d;
                    dw[wi] += x[xi] * d;
                }
            }
            return (dx, dw);
        }
    }
}
