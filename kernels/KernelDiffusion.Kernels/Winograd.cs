using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Four values: a row or a column of a Winograd tile. ILGPU keeps value-type fields in registers.</summary>
public struct Quad
{
    public float X0, X1, X2, X3;

    public Quad(float x0, float x1, float x2, float x3) { X0 = x0; X1 = x1; X2 = x2; X3 = x3; }

    public static Quad operator +(Quad a, Quad b) => new(a.X0 + b.X0, a.X1 + b.X1, a.X2 + b.X2, a.X3 + b.X3);
    public static Quad operator -(Quad a, Quad b) => new(a.X0 - b.X0, a.X1 - b.X1, a.X2 - b.X2, a.X3 - b.X3);
    public static Quad operator *(float s, Quad a) => new(s * a.X0, s * a.X1, s * a.X2, s * a.X3);
}

/// <summary>Parameters shared by the Winograd kernels: a 3x3, stride 1, pad 1 convolution of C-channel planes H x W,
/// cut into 2 x 2 output tiles (TilesH x TilesW per plane, P = N TilesH TilesW in all). Transformed tensors are laid out
/// [16 * Slices, channels, SliceTiles]: component xi of slice s of tile p = s * SliceTiles + q at
/// ((xi * Slices + s) * channels + c) * SliceTiles + q, so each of the 16 x Slices matrices is a plain row-major GEMM operand.</summary>
public struct WinogradShape
{
    public int N, H, W, TilesH, TilesW, P, Slices, SliceTiles;

    public static WinogradShape Create(int n, int h, int w, int slices)
    {
        int th = (h + 1) / 2, tw = (w + 1) / 2, p = n * th * tw;
        return new() { N = n, H = h, W = w, TilesH = th, TilesW = tw, P = p, Slices = slices, SliceTiles = (p + slices - 1) / slices };
    }

    /// <summary>Where component xi of (slice s, tile q) of channel c lies in a transformed tensor of <paramref name="channels"/>.</summary>
    public readonly int At(int xi, int s, int c, int q, int channels) => ((xi * Slices + s) * channels + c) * SliceTiles + q;
}

/// <summary>Conv v12: Winograd F(2x2, 3x3) (Lavin and Gray 2015) for 3x3, stride 1, pad 1 convolutions, every pass. A 2 x 2
/// output tile is A^T [ (G g G^T) . (B^T d B) ] A for its 4 x 4 input patch d: per tile and channel pair, 16
/// multiplications instead of 36. The 16 products summed over channels are 16 batched GEMMs (any GEMM version), between
/// three bandwidth-bound transforms:
///   forward      U = G w G^T [16, Cout, Cin];  V = B^T x B [16, Cin, P];  M = U V;  y = A^T M A + b
///   input grad   the same with dy for x and w rotated by 180 degrees and transposed (a stride-1 same convolution)
///   weight grad  dU = sum_p (A dy A^T) . (B^T x B), a GEMM over tiles per component (split in Slices for parallelism);
///                dw = G^T dU G
/// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1].
/// The price is memory: the transformed input and output are 4 times the tensors they come from (Scratch).</summary>
public static class Winograd
{
    /// <summary>Whether v12 covers a geometry: 3x3, stride 1, pad 1, with every scratch index within an int.</summary>
    public static bool Covers(ConvGeometry g)
        => g.R == 3 && g.S == 1 && g.P == 1 && ScratchFloats(g, ConvPass.Forward, 1) <= int.MaxValue
           && ScratchFloats(g, ConvPass.InputGrad, 1) <= int.MaxValue && ScratchFloats(g, ConvPass.WeightGrad, MaxSlices) <= int.MaxValue;

    const int MaxSlices = 64;

    /// <summary>How many slices the weight gradient's GEMMs split the tiles into: 1 on the CPU accelerator; on a GPU enough
    /// 64 x 64 output tiles for two per multiprocessor, each slice at least 256 tiles long.</summary>
    public static int Slices(Accelerator acc, ConvGeometry g)
    {
        if (Launch.IsCpu(acc)) return 1;
        long tiles = 16L * ((g.Cout + 63) / 64) * ((g.Cin + 63) / 64);
        long wanted = (2L * acc.NumMultiprocessors + tiles - 1) / tiles;
        return (int)Math.Clamp(Math.Min(wanted, WinogradShape.Create(g.N, g.H, g.W, 1).P / 256), 1, MaxSlices);
    }

    /// <summary>The floats of scratch a pass needs: its three transformed operands.</summary>
    public static long ScratchFloats(ConvGeometry g, ConvPass pass, int slices)
    {
        var s = WinogradShape.Create(g.N, g.H, g.W, slices);
        long tiles = 16L * s.Slices * s.SliceTiles, weights = 16L * g.Cout * g.Cin;
        return pass switch
        {
            ConvPass.Forward => weights + tiles * (g.Cin + g.Cout),
            ConvPass.InputGrad => weights + tiles * (g.Cout + g.Cin),
            _ => tiles * (g.Cout + g.Cin) + weights * s.Slices,
        };
    }

    /// <summary>Runs one pass through Winograd with <paramref name="slices"/> slices for the weight gradient (see Slices);
    /// <paramref name="scratch"/> holds at least ScratchFloats; the GEMMs run through <paramref name="gemm"/> (default:
    /// Gemm.Run at GEMM's default version; the autodiff op passes its own, which honours KD_KERNELS and gemm=auto).</summary>
    public static void Run(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o, ArrayView<float> scratch, int slices, GemmRunner? gemm = null)
    {
        if (!Covers(g)) throw new VersionNotApplicableException($"conv2d v12 (Winograd) takes 3x3 kernels at stride 1 and pad 1 within 2^31 scratch floats, not r{g.R} s{g.S} p{g.P} at N{g.N} C{g.Cin}->{g.Cout} {g.H}x{g.W}");
        if (pass != ConvPass.WeightGrad) slices = 1;
        long need = ScratchFloats(g, pass, slices);
        if (!scratch.IsValid || scratch.Length < need)
            throw new ArgumentException($"conv2d v12 (Winograd) {pass} at N{g.N} C{g.Cin}->{g.Cout} {g.H}x{g.W} needs {need} floats of scratch, given {(scratch.IsValid ? scratch.Length : 0)}");
        gemm ??= (a, b, c, shape) => Gemm.Run(acc, a, b, c, shape);
        var s = WinogradShape.Create(g.N, g.H, g.W, slices);
        long tiles = 16L * s.Slices * s.SliceTiles;
        if (pass == ConvPass.WeightGrad)
        {
            var yhat = scratch.SubView(0, tiles * g.Cout);
            var v = scratch.SubView(tiles * g.Cout, tiles * g.Cin);
            var dhat = scratch.SubView(tiles * (g.Cout + g.Cin), 16L * s.Slices * g.Cout * g.Cin);
            var og = KernelCache.Get(acc, "conv2d.v12.output_grad_transform",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, WinogradShape, int>(OutputGradTransformKernel));
            og(Launch.GridStride(acc, tiles * g.Cout), dy, yhat, s, g.Cout);
            InputTransform(acc, x, v, s, g.Cin);
            // dU[b] (Cout x Cin) = Yhat[b] (Cout x SliceTiles) V[b]^T, for the 16 components of each slice.
            gemm(yhat, v, dhat, new GemmShape
            {
                Batch = 16 * s.Slices, M = g.Cout, N = g.Cin, K = s.SliceTiles, TransB = 1,
                StrideA = g.Cout * s.SliceTiles, StrideB = g.Cin * s.SliceTiles, StrideC = g.Cout * g.Cin, Alpha = 1,
            });
            var wg = KernelCache.Get(acc, "conv2d.v12.weight_grad_transform",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(WeightGradTransformKernel));
            wg(Launch.GridStride(acc, 16L * s.Slices * g.Cout * g.Cin), dhat, o, g.Cout, g.Cin, s.Slices);
            return;
        }
        // Forward: y = conv(x, w) over Cin -> Cout. Input grad: dx = conv(dy, w rotated and transposed) over Cout -> Cin.
        bool forward = pass == ConvPass.Forward;
        int cin = forward ? g.Cin : g.Cout, cout = forward ? g.Cout : g.Cin;
        var u = scratch.SubView(0, 16L * cin * cout);
        var vin = scratch.SubView(16L * cin * cout, tiles * cin);
        var m = scratch.SubView(16L * cin * cout + tiles * cin, tiles * cout);
        var wt = KernelCache.Get(acc, "conv2d.v12.weight_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(WeightTransformKernel));
        wt(Launch.GridStride(acc, 16L * cin * cout), w, u, g.Cout, g.Cin, forward ? 0 : 1);
        InputTransform(acc, forward ? x : dy, vin, s, cin);
        // M[xi] (cout x P) = U[xi] (cout x cin) V[xi] (cin x P).
        gemm(u, vin, m, new GemmShape
        {
            Batch = 16, M = cout, N = s.P, K = cin, StrideA = cout * cin, StrideB = cin * s.P, StrideC = cout * s.P, Alpha = 1,
        });
        var ot = KernelCache.Get(acc, "conv2d.v12.output_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, WinogradShape, int>(OutputTransformKernel));
        ot(Launch.GridStride(acc, tiles * cout / 4), m, bias, o, hasBias ? 1 : 0, s, cout);
    }

    static void InputTransform(Accelerator acc, ArrayView<float> src, ArrayView<float> v, WinogradShape s, int channels)
    {
        var k = KernelCache.Get(acc, "conv2d.v12.input_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, WinogradShape, int>(InputTransformKernel));
        k(Launch.GridStride(acc, 16L * s.Slices * s.SliceTiles * channels), src, v, s, channels);
    }

    // ---- the 1-D transforms; a 2-D one applies its 1-D form to the columns (combining rows), then to each row ----

    /// <summary>B^T d for a column d of an input patch.</summary>
    static Quad Bt(Quad d) => new(d.X0 - d.X2, d.X1 + d.X2, d.X2 - d.X1, d.X1 - d.X3);

    /// <summary>G g for a column g of a 3x3 kernel.</summary>
    static Quad G(float g0, float g1, float g2) => new(g0, 0.5f * (g0 + g1 + g2), 0.5f * (g0 - g1 + g2), g2);

    /// <summary>A y for a column y of a 2 x 2 output-gradient tile (A = (A^T)^T, 4 x 2).</summary>
    static Quad A(float y0, float y1) => new(y0, y0 + y1, y0 - y1, -y1);

    /// <summary>Row r of the patch of channel plane <paramref name="plane"/> at (h0 + r, w0..w0 + 3), zero outside the plane.</summary>
    static Quad PatchRow(ArrayView<float> src, int plane, WinogradShape s, int h, int w0)
    {
        if (h < 0 || h >= s.H) return default;
        int row = (plane * s.H + h) * s.W;
        return new(w0 >= 0 ? src[row + w0] : 0f, w0 + 1 < s.W ? src[row + w0 + 1] : 0f,
            w0 + 2 < s.W ? src[row + w0 + 2] : 0f, w0 + 3 < s.W ? src[row + w0 + 3] : 0f);
    }

    static void Store(ArrayView<float> v, WinogradShape s, int channels, int row, int sl, int c, int q, Quad t)
    {
        v[s.At(4 * row, sl, c, q, channels)] = t.X0;
        v[s.At(4 * row + 1, sl, c, q, channels)] = t.X1;
        v[s.At(4 * row + 2, sl, c, q, channels)] = t.X2;
        v[s.At(4 * row + 3, sl, c, q, channels)] = t.X3;
    }

    // ---- kernels ----

    /// <summary>V = B^T d B for every (channel, tile) of <paramref name="src"/> [N, channels, H, W]: one thread per
    /// (channel, slice, tile), consecutive threads on consecutive tiles (coalesced stores). Tiles past P are zeros.</summary>
    static void InputTransformKernel(ArrayView<float> src, ArrayView<float> v, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            int q = e % s.SliceTiles, sl = e / s.SliceTiles % s.Slices, c = e / (s.SliceTiles * s.Slices), p = sl * s.SliceTiles + q;
            Quad d0 = default, d1 = default, d2 = default, d3 = default;
            if (p < s.P)
            {
                int tw = p % s.TilesW, th = p / s.TilesW % s.TilesH, plane = p / (s.TilesW * s.TilesH) * channels + c;
                int h0 = 2 * th - 1, w0 = 2 * tw - 1;
                d0 = PatchRow(src, plane, s, h0, w0);
                d1 = PatchRow(src, plane, s, h0 + 1, w0);
                d2 = PatchRow(src, plane, s, h0 + 2, w0);
                d3 = PatchRow(src, plane, s, h0 + 3, w0);
            }
            // B^T d (row i combines patch rows), then each row times B.
            Store(v, s, channels, 0, sl, c, q, Bt(d0 - d2));
            Store(v, s, channels, 1, sl, c, q, Bt(d1 + d2));
            Store(v, s, channels, 2, sl, c, q, Bt(d2 - d1));
            Store(v, s, channels, 3, sl, c, q, Bt(d1 - d3));
        }
    }

    /// <summary>U = G g G^T for every filter: forward (<paramref name="rotate"/> 0) U[xi, co, ci] from w[co, ci];
    /// input grad (1) U[xi, ci, co] from w[co, ci] rotated by 180 degrees. Consecutive threads on consecutive columns of U.</summary>
    static void WeightTransformKernel(ArrayView<float> w, ArrayView<float> u, int cout, int cin, int rotate)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        int rows = rotate == 0 ? cout : cin, cols = rotate == 0 ? cin : cout;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            int col = e % cols, row = e / cols;
            int f = (rotate == 0 ? row * cin + col : col * cin + row) * 9;
            // g[r][c], or g[2 - r][2 - c] rotated.
            int first = rotate == 0 ? 0 : 8, step = rotate == 0 ? 1 : -1;
            float g00 = w[f + first], g01 = w[f + first + step], g02 = w[f + first + 2 * step];
            float g10 = w[f + first + 3 * step], g11 = w[f + first + 4 * step], g12 = w[f + first + 5 * step];
            float g20 = w[f + first + 6 * step], g21 = w[f + first + 7 * step], g22 = w[f + first + 8 * step];
            // G g: the three columns of g, each to four rows.
            Quad c0 = G(g00, g10, g20), c1 = G(g01, g11, g21), c2 = G(g02, g12, g22);
            // (G g) G^T: row i of G g, to four columns.
            Quad r0 = G(c0.X0, c1.X0, c2.X0), r1 = G(c0.X1, c1.X1, c2.X1), r2 = G(c0.X2, c1.X2, c2.X2), r3 = G(c0.X3, c1.X3, c2.X3);
            int plane = rows * cols, at = row * cols + col;
            u[at] = r0.X0; u[plane + at] = r0.X1; u[2 * plane + at] = r0.X2; u[3 * plane + at] = r0.X3;
            u[4 * plane + at] = r1.X0; u[5 * plane + at] = r1.X1; u[6 * plane + at] = r1.X2; u[7 * plane + at] = r1.X3;
            u[8 * plane + at] = r2.X0; u[9 * plane + at] = r2.X1; u[10 * plane + at] = r2.X2; u[11 * plane + at] = r2.X3;
            u[12 * plane + at] = r3.X0; u[13 * plane + at] = r3.X1; u[14 * plane + at] = r3.X2; u[15 * plane + at] = r3.X3;
        }
    }

    /// <summary>y = A^T m A (+ bias) for every (channel, tile) of M [16, channels, P], into y [N, channels, H, W]; the
    /// outputs of a tile overhanging an odd plane are not written.</summary>
    static void OutputTransformKernel(ArrayView<float> m, ArrayView<float> bias, ArrayView<float> y, int hasBias, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.P, plane = channels * s.P;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            int p = e % s.P, c = e / s.P, at = c * s.P + p;
            var m0 = new Quad(m[at], m[plane + at], m[2 * plane + at], m[3 * plane + at]);
            var m1 = new Quad(m[4 * plane + at], m[5 * plane + at], m[6 * plane + at], m[7 * plane + at]);
            var m2 = new Quad(m[8 * plane + at], m[9 * plane + at], m[10 * plane + at], m[11 * plane + at]);
            var m3 = new Quad(m[12 * plane + at], m[13 * plane + at], m[14 * plane + at], m[15 * plane + at]);
            // A^T m: two rows; then each row times A.
            Quad z0 = m0 + m1 + m2, z1 = m1 - m2 - m3;
            float b = hasBias != 0 ? bias[c] : 0f;
            int tw = p % s.TilesW, th = p / s.TilesW % s.TilesH, n = p / (s.TilesW * s.TilesH);
            int h = 2 * th, w = 2 * tw, row = ((n * channels + c) * s.H + h) * s.W + w;
            y[row] = z0.X0 + z0.X1 + z0.X2 + b;
            if (w + 1 < s.W) y[row + 1] = z0.X1 - z0.X2 - z0.X3 + b;
            if (h + 1 < s.H)
            {
                y[row + s.W] = z1.X0 + z1.X1 + z1.X2 + b;
                if (w + 1 < s.W) y[row + s.W + 1] = z1.X1 - z1.X2 - z1.X3 + b;
            }
        }
    }

    /// <summary>Yhat = A dy A^T for every (channel, slice, tile) of dy [N, channels, H, W] (zero past the plane and past P).</summary>
    static void OutputGradTransformKernel(ArrayView<float> dy, ArrayView<float> yhat, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            int q = e % s.SliceTiles, sl = e / s.SliceTiles % s.Slices, c = e / (s.SliceTiles * s.Slices), p = sl * s.SliceTiles + q;
            float y00 = 0, y01 = 0, y10 = 0, y11 = 0;
            if (p < s.P)
            {
                int tw = p % s.TilesW, th = p / s.TilesW % s.TilesH, n = p / (s.TilesW * s.TilesH);
                int h = 2 * th, w = 2 * tw, row = ((n * channels + c) * s.H + h) * s.W + w;
                bool right = w + 1 < s.W, down = h + 1 < s.H;
                y00 = dy[row];
                y01 = right ? dy[row + 1] : 0f;
                y10 = down ? dy[row + s.W] : 0f;
                y11 = right && down ? dy[row + s.W + 1] : 0f;
            }
            // A dy: the two columns of dy, each to four rows; then row i times A^T.
            Quad c0 = A(y00, y10), c1 = A(y01, y11);
            Store(yhat, s, channels, 0, sl, c, q, A(c0.X0, c1.X0));
            Store(yhat, s, channels, 1, sl, c, q, A(c0.X1, c1.X1));
            Store(yhat, s, channels, 2, sl, c, q, A(c0.X2, c1.X2));
            Store(yhat, s, channels, 3, sl, c, q, A(c0.X3, c1.X3));
        }
    }

    /// <summary>dw = G^T (sum over slices of dU) G for every filter, from dU [16 * slices, Cout, Cin]; the slices are
    /// added in order, so the result does not depend on the launch.</summary>
    static void WeightGradTransformKernel(ArrayView<float> du, ArrayView<float> dw, int cout, int cin, int slices)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            Quad u0 = SliceSum(du, e, 0, count, slices), u1 = SliceSum(du, e, 4, count, slices);
            Quad u2 = SliceSum(du, e, 8, count, slices), u3 = SliceSum(du, e, 12, count, slices);
            // G^T u: three rows from four (G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]); then each row times G.
            Quad r0 = u0 + 0.5f * (u1 + u2), r1 = 0.5f * (u1 - u2), r2 = 0.5f * (u1 + u2) + u3;
            int f = e * 9;
            GtRow(dw, f, r0);
            GtRow(dw, f + 3, r1);
            GtRow(dw, f + 6, r2);
        }
    }

    /// <summary>Row (components first .. first + 3) of dU for filter e, summed over the slices.</summary>
    static Quad SliceSum(ArrayView<float> du, int e, int first, int count, int slices)
    {
        Quad sum = default;
        for (int sl = 0; sl < slices; sl++)
            sum += new Quad(du[((first * slices) + sl) * count + e], du[(((first + 1) * slices) + sl) * count + e],
                du[(((first + 2) * slices) + sl) * count + e], du[(((first + 3) * slices) + sl) * count + e]);
        return sum;
    }

    /// <summary>Writes r G (three values) at dw[f..f + 2].</summary>
    static void GtRow(ArrayView<float> dw, int f, Quad r)
    {
        dw[f] = r.X0 + 0.5f * (r.X1 + r.X2);
        dw[f + 1] = 0.5f * (r.X1 - r.X2);
        dw[f + 2] = 0.5f * (r.X1 + r.X2) + r.X3;
    }
}
