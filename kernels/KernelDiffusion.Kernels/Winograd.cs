using ILGPU;
using ILGPU.Runtime;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>Four values: a row or a column of an F(2x2, 3x3) tile, or GEMM v10's and v11's share of a stage. ILGPU keeps
/// value-type fields in registers.</summary>
public struct Quad
{
    public float X0, X1, X2, X3;

    public Quad(float x0, float x1, float x2, float x3) { X0 = x0; X1 = x1; X2 = x2; X3 = x3; }

    public static Quad operator +(Quad a, Quad b) => new(a.X0 + b.X0, a.X1 + b.X1, a.X2 + b.X2, a.X3 + b.X3);
    public static Quad operator -(Quad a, Quad b) => new(a.X0 - b.X0, a.X1 - b.X1, a.X2 - b.X2, a.X3 - b.X3);
    public static Quad operator *(float s, Quad a) => new(s * a.X0, s * a.X1, s * a.X2, s * a.X3);
}

/// <summary>Six values: a row or a column of an F(4x4, 3x3) tile.</summary>
public struct Six
{
    public float X0, X1, X2, X3, X4, X5;

    public Six(float x0, float x1, float x2, float x3, float x4, float x5) { X0 = x0; X1 = x1; X2 = x2; X3 = x3; X4 = x4; X5 = x5; }

    public static Six operator +(Six a, Six b) => new(a.X0 + b.X0, a.X1 + b.X1, a.X2 + b.X2, a.X3 + b.X3, a.X4 + b.X4, a.X5 + b.X5);
    public static Six operator -(Six a, Six b) => new(a.X0 - b.X0, a.X1 - b.X1, a.X2 - b.X2, a.X3 - b.X3, a.X4 - b.X4, a.X5 - b.X5);
    public static Six operator *(float s, Six a) => new(s * a.X0, s * a.X1, s * a.X2, s * a.X3, s * a.X4, s * a.X5);
}

/// <summary>The nine taps of one 3x3 filter, row by row, read as they are or rotated by 180 degrees.</summary>
public struct Taps
{
    public float G00, G01, G02, G10, G11, G12, G20, G21, G22;

    /// <summary>Filter e of w [Cout, Cin, 3, 3] (e = co Cin + ci); rotated: g[2 - r][2 - c].</summary>
    public static Taps Read(ArrayView<float> w, int e, int rotate)
    {
        int f = e * 9, first = rotate == 0 ? f : f + 8, step = rotate == 0 ? 1 : -1;
        return new Taps
        {
            G00 = w[first], G01 = w[first + step], G02 = w[first + 2 * step],
            G10 = w[first + 3 * step], G11 = w[first + 4 * step], G12 = w[first + 5 * step],
            G20 = w[first + 6 * step], G21 = w[first + 7 * step], G22 = w[first + 8 * step],
        };
    }
}

/// <summary>Work item e of a weight transform: the filter it reads from w [Cout, Cin, 3, 3], and where its components go in
/// U [xi, rows, cols] (Cout x Cin forward; Cin x Cout, rotated, for the input gradient). Consecutive items write
/// consecutive columns of U.</summary>
public struct FilterSlot
{
    public int Filter, Plane, At;

    public static FilterSlot Of(int e, int cout, int cin, int rotate)
    {
        int cols = rotate == 0 ? cin : cout, col = e % cols, row = e / cols;
        return new FilterSlot { Filter = rotate == 0 ? row * cin + col : col * cin + row, Plane = cout * cin, At = e };
    }
}

/// <summary>Parameters shared by the Winograd kernels: a 3x3, stride 1, pad 1 convolution of C-channel planes H x W, cut
/// into Out x Out output tiles (Out 2 or 4; TilesH x TilesW per plane, P = N TilesH TilesW in all), each with (Out + 2)^2
/// components. Transformed tensors are laid out [components * Slices, channels, SliceTiles]: component xi of slice s of
/// tile p = s * SliceTiles + q at ((xi * Slices + s) * channels + c) * SliceTiles + q, so each matrix is a plain
/// row-major GEMM operand.</summary>
public struct WinogradShape
{
    public int N, H, W, Out, TilesH, TilesW, P, Slices, SliceTiles;

    public static WinogradShape Create(int n, int h, int w, int slices, int outTile)
    {
        int th = (h + outTile - 1) / outTile, tw = (w + outTile - 1) / outTile, p = n * th * tw;
        return new()
        {
            N = n, H = h, W = w, Out = outTile, TilesH = th, TilesW = tw, P = p, Slices = slices, SliceTiles = (p + slices - 1) / slices,
        };
    }

    public readonly int Components => (Out + 2) * (Out + 2);

    /// <summary>Where component xi of (slice s, tile q) of channel c lies in a transformed tensor of <paramref name="channels"/>.</summary>
    public readonly int At(int xi, int s, int c, int q, int channels) => ((xi * Slices + s) * channels + c) * SliceTiles + q;

    /// <summary>Work item e of a transform over (channel, slice, tile), consecutive items on consecutive tiles (coalesced
    /// stores): its tile p (P or more past the last slice's end), and where the tile's outputs start in [N, channels, H, W].</summary>
    public readonly TileIndex Item(int e, int channels)
    {
        int q = e % SliceTiles, sl = e / SliceTiles % Slices, c = e / (SliceTiles * Slices), p = sl * SliceTiles + q;
        int tw = p % TilesW, th = p / TilesW % TilesH, n = p / (TilesW * TilesH);
        return new TileIndex { Q = q, Slice = sl, C = c, P = p, H = Out * th, W = Out * tw, Plane = n * channels + c };
    }
}

/// <summary>A transform's work item (WinogradShape.Item): tile Q of slice Slice of channel C (tile P overall), whose
/// outputs start at row H, column W of plane Plane (n channels + c).</summary>
public struct TileIndex
{
    public int Q, Slice, C, P, H, W, Plane;
}

/// <summary>Conv v12 and v13: Winograd F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray 2015) for 3x3, stride 1, pad 1
/// convolutions, every pass. An m x m output tile is A^T [ (G g G^T) . (B^T d B) ] A for its (m + 2)^2 input patch d:
/// per tile and channel pair (m + 2)^2 multiplications instead of 9 m^2 (16 for 36: 2.25x fewer; 36 for 144: 4x). The
/// products summed over channels are (m + 2)^2 batched GEMMs (any GEMM version), between three bandwidth-bound transforms:
///   forward      U = G w G^T [xi, Cout, Cin];  V = B^T x B [xi, Cin, P];  M = U V;  y = A^T M A + b
///   input grad   the same with dy for x and w rotated by 180 degrees and transposed (a stride-1 same convolution)
///   weight grad  dU = sum_p (A dy A^T) . (B^T x B), a GEMM over tiles per component (split in Slices for parallelism);
///                dw = G^T dU G
/// F(2x2, 3x3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
///              A^T = [1 1 1 0; 0 1 -1 -1].
/// F(4x4, 3x3), at the points 0, 1, -1, 2, -2 and infinity: B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
///              0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
///              1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
/// The price is memory: the transformed input and output are (m + 2)^2 / m^2 times the tensors they come from (4x for
/// F(2x2), 2.25x for F(4x4)), and F(4x4)'s larger coefficients round more.</summary>
public static class Winograd
{
    /// <summary>Whether Winograd with <paramref name="outTile"/> x outTile output tiles covers a geometry: 3x3, stride 1,
    /// pad 1, with every scratch index within an int.</summary>
    public static bool Covers(ConvGeometry g, int outTile)
        => g.R == 3 && g.S == 1 && g.P == 1 && ScratchFloats(g, ConvPass.Forward, 1, outTile) <= int.MaxValue
           && ScratchFloats(g, ConvPass.InputGrad, 1, outTile) <= int.MaxValue && ScratchFloats(g, ConvPass.WeightGrad, MaxSlices, outTile) <= int.MaxValue;

    const int MaxSlices = 64;

    /// <summary>How many slices the weight gradient's GEMMs split the tiles into: 1 on the CPU accelerator; on a GPU enough
    /// 64 x 64 output tiles for two per multiprocessor, each slice at least 256 tiles long.</summary>
    public static int Slices(Accelerator acc, ConvGeometry g, int outTile)
    {
        if (Launch.IsCpu(acc)) return 1;
        var s = WinogradShape.Create(g.N, g.H, g.W, 1, outTile);
        long tiles = (long)s.Components * ((g.Cout + 63) / 64) * ((g.Cin + 63) / 64);
        long wanted = (2L * acc.NumMultiprocessors + tiles - 1) / tiles;
        return (int)Math.Clamp(Math.Min(wanted, s.P / 256), 1, MaxSlices);
    }

    /// <summary>The floats of scratch a pass needs: its three transformed operands.</summary>
    public static long ScratchFloats(ConvGeometry g, ConvPass pass, int slices, int outTile)
    {
        var s = WinogradShape.Create(g.N, g.H, g.W, pass == ConvPass.WeightGrad ? slices : 1, outTile);
        long tiles = (long)s.Components * s.Slices * s.SliceTiles, weights = (long)s.Components * g.Cout * g.Cin;
        return tiles * (g.Cin + g.Cout) + weights * s.Slices;
    }

    /// <summary>Runs one pass through Winograd with <paramref name="outTile"/> x outTile output tiles (2: conv v12, 4: v13)
    /// and <paramref name="slices"/> slices for the weight gradient (see Slices); <paramref name="scratch"/> holds at least
    /// ScratchFloats; the GEMMs run through <paramref name="gemm"/> (default: Gemm.Run at GEMM's default version; the
    /// autodiff op passes its own, which honours KD_KERNELS and gemm=auto).</summary>
    public static void Run(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o, ArrayView<float> scratch, int slices, int outTile, GemmRunner? gemm = null)
    {
        if (outTile is not (2 or 4)) throw new ArgumentException($"Winograd: output tiles are 2x2 or 4x4, not {outTile}x{outTile}");
        string name = outTile == 2 ? "v12" : "v13";
        if (!Covers(g, outTile))
            throw new VersionNotApplicableException($"conv2d {name} (Winograd) takes 3x3 kernels at stride 1 and pad 1 within 2^31 scratch floats, not r{g.R} s{g.S} p{g.P} at N{g.N} C{g.Cin}->{g.Cout} {g.H}x{g.W}");
        if (pass != ConvPass.WeightGrad) slices = 1;
        long need = ScratchFloats(g, pass, slices, outTile);
        if (!scratch.IsValid || scratch.Length < need)
            throw new ArgumentException($"conv2d {name} (Winograd) {pass} at N{g.N} C{g.Cin}->{g.Cout} {g.H}x{g.W} needs {need} floats of scratch, given {(scratch.IsValid ? scratch.Length : 0)}");
        gemm ??= Gemm.At(acc);
        var s = WinogradShape.Create(g.N, g.H, g.W, slices, outTile);
        int xi = s.Components;
        long tiles = (long)xi * s.Slices * s.SliceTiles;
        bool f23 = outTile == 2;
        if (pass == ConvPass.WeightGrad)
        {
            var yhat = scratch.SubView(0, tiles * g.Cout);
            var v = scratch.SubView(tiles * g.Cout, tiles * g.Cin);
            var dhat = scratch.SubView(tiles * (g.Cout + g.Cin), (long)xi * s.Slices * g.Cout * g.Cin);
            var og = KernelCache.Get(acc, $"conv2d.{name}.output_grad_transform",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, WinogradShape, int>(f23 ? OutputGradTransformF23Kernel : OutputGradTransformF43Kernel));
            og(Launch.GridStride(acc, tiles * g.Cout), dy, yhat, s, g.Cout);
            InputTransform(acc, name, x, v, s, g.Cin);
            // dU[b] (Cout x Cin) = Yhat[b] (Cout x SliceTiles) V[b]^T, for every component of each slice.
            gemm(yhat, v, dhat, new GemmShape
            {
                Batch = xi * s.Slices, M = g.Cout, N = g.Cin, K = s.SliceTiles, TransB = 1,
                StrideA = g.Cout * s.SliceTiles, StrideB = g.Cin * s.SliceTiles, StrideC = g.Cout * g.Cin, Alpha = 1,
            });
            var wg = KernelCache.Get(acc, $"conv2d.{name}.weight_grad_transform",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(f23 ? WeightGradTransformF23Kernel : WeightGradTransformF43Kernel));
            wg(Launch.GridStride(acc, (long)xi * s.Slices * g.Cout * g.Cin), dhat, o, g.Cout, g.Cin, s.Slices);
            return;
        }
        // Forward: y = conv(x, w) over Cin -> Cout. Input grad: dx = conv(dy, w rotated and transposed) over Cout -> Cin.
        bool forward = pass == ConvPass.Forward;
        int cin = forward ? g.Cin : g.Cout, cout = forward ? g.Cout : g.Cin;
        var u = scratch.SubView(0, (long)xi * cin * cout);
        var vin = scratch.SubView((long)xi * cin * cout, tiles * cin);
        var m = scratch.SubView((long)xi * cin * cout + tiles * cin, tiles * cout);
        var wt = KernelCache.Get(acc, $"conv2d.{name}.weight_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(f23 ? WeightTransformF23Kernel : WeightTransformF43Kernel));
        wt(Launch.GridStride(acc, (long)xi * cin * cout), w, u, g.Cout, g.Cin, forward ? 0 : 1);
        InputTransform(acc, name, forward ? x : dy, vin, s, cin);
        // M[xi] (cout x P) = U[xi] (cout x cin) V[xi] (cin x P).
        gemm(u, vin, m, new GemmShape
        {
            Batch = xi, M = cout, N = s.P, K = cin, StrideA = cout * cin, StrideB = cin * s.P, StrideC = cout * s.P, Alpha = 1,
        });
        var ot = KernelCache.Get(acc, $"conv2d.{name}.output_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, WinogradShape, int, int>(f23 ? OutputTransformF23Kernel : OutputTransformF43Kernel));
        ot(Launch.GridStride(acc, (long)s.P * cout * outTile * outTile), m, bias, o, hasBias ? 1 : 0, s, cout, OutputRuns(o, g.W, outTile) ? 1 : 0);
    }

    /// <summary>Whether the output transforms may store each row of a tile at once (a Float2 or Float4): the planes' width
    /// a multiple of the tile's, so no tile overhangs a row's end, and y aligned to a row of a tile. Stored one float at a
    /// time, a warp's stores of 4 x 4 tiles used 6.8 of every 32 bytes they moved (Nsight Compute, an H100,
    /// bench/results/h100-2026-11-27/3-ncu), and the forward's output transform ran at 1.55 TB/s.</summary>
    public static bool OutputRuns(ArrayView<float> y, int width, int outTile)
        => width % outTile == 0 && Launch.Aligned(y, 4 * outTile);

    static void InputTransform(Accelerator acc, string name, ArrayView<float> src, ArrayView<float> v, WinogradShape s, int channels)
    {
        var k = KernelCache.Get(acc, $"conv2d.{name}.input_transform",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, WinogradShape, int>(s.Out == 2 ? InputTransformF23Kernel : InputTransformF43Kernel));
        k(Launch.GridStride(acc, (long)s.Components * s.Slices * s.SliceTiles * channels), src, v, s, channels);
    }

    /// <summary>x[plane, h, w], zero outside the plane (the padding, and tiles overhanging it).</summary>
    static float At(ArrayView<float> src, WinogradShape s, int plane, int h, int w)
        => h >= 0 && h < s.H && w >= 0 && w < s.W ? src[(plane * s.H + h) * s.W + w] : 0f;

    /// <summary>Writes y[plane, h, w] where it lies inside the plane.</summary>
    static void Put(ArrayView<float> y, WinogradShape s, int plane, int h, int w, float value)
    {
        if (h < s.H && w < s.W) y[(plane * s.H + h) * s.W + w] = value;
    }

    // ---- F(2x2, 3x3): the 1-D transforms; a 2-D one applies its 1-D form to the columns (combining rows), then to each row ----

    /// <summary>B^T d for a column d of an input patch.</summary>
    static Quad Bt(Quad d) => new(d.X0 - d.X2, d.X1 + d.X2, d.X2 - d.X1, d.X1 - d.X3);

    /// <summary>G g for a column g of a 3x3 kernel.</summary>
    static Quad G(float g0, float g1, float g2) => new(g0, 0.5f * (g0 + g1 + g2), 0.5f * (g0 - g1 + g2), g2);

    /// <summary>A y for a column y of a 2 x 2 output-gradient tile (A = (A^T)^T, 4 x 2).</summary>
    static Quad A(float y0, float y1) => new(y0, y0 + y1, y0 - y1, -y1);

    static Quad PatchRow4(ArrayView<float> src, WinogradShape s, int plane, int h, int w0)
        => new(At(src, s, plane, h, w0), At(src, s, plane, h, w0 + 1), At(src, s, plane, h, w0 + 2), At(src, s, plane, h, w0 + 3));

    /// <summary>Row <paramref name="row"/> of a 4 x 4 transformed tile: components 4 row .. 4 row + 3.</summary>
    static void Store(ArrayView<float> v, WinogradShape s, int channels, TileIndex t, int row, Quad r)
    {
        v[s.At(4 * row, t.Slice, t.C, t.Q, channels)] = r.X0;
        v[s.At(4 * row + 1, t.Slice, t.C, t.Q, channels)] = r.X1;
        v[s.At(4 * row + 2, t.Slice, t.C, t.Q, channels)] = r.X2;
        v[s.At(4 * row + 3, t.Slice, t.C, t.Q, channels)] = r.X3;
    }

    /// <summary>Row <paramref name="row"/> of a 4 x 4 tile of a [16, rows, cols] tensor at position at of a plane.</summary>
    static void StorePlanes(ArrayView<float> u, int plane, int at, int row, Quad r)
    {
        u[(4 * row) * plane + at] = r.X0;
        u[(4 * row + 1) * plane + at] = r.X1;
        u[(4 * row + 2) * plane + at] = r.X2;
        u[(4 * row + 3) * plane + at] = r.X3;
    }

    static Quad LoadPlanes(ArrayView<float> m, int plane, int at, int row)
        => new(m[(4 * row) * plane + at], m[(4 * row + 1) * plane + at], m[(4 * row + 2) * plane + at], m[(4 * row + 3) * plane + at]);

    /// <summary>V = B^T d B for every (channel, slice, tile) of <paramref name="src"/> [N, channels, H, W]; tiles past P are zeros.</summary>
    static void InputTransformF23Kernel(ArrayView<float> src, ArrayView<float> v, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            Quad d0 = default, d1 = default, d2 = default, d3 = default;
            if (t.P < s.P)
            {
                d0 = PatchRow4(src, s, t.Plane, t.H - 1, t.W - 1);
                d1 = PatchRow4(src, s, t.Plane, t.H, t.W - 1);
                d2 = PatchRow4(src, s, t.Plane, t.H + 1, t.W - 1);
                d3 = PatchRow4(src, s, t.Plane, t.H + 2, t.W - 1);
            }
            // B^T d (row i combines patch rows), then each row times B.
            Store(v, s, channels, t, 0, Bt(d0 - d2));
            Store(v, s, channels, t, 1, Bt(d1 + d2));
            Store(v, s, channels, t, 2, Bt(d2 - d1));
            Store(v, s, channels, t, 3, Bt(d1 - d3));
        }
    }

    /// <summary>U = G g G^T for every filter: forward (<paramref name="rotate"/> 0) U[xi, co, ci] from w[co, ci];
    /// input grad (1) U[xi, ci, co] from w[co, ci] rotated by 180 degrees. Consecutive threads on consecutive columns of U.</summary>
    static void WeightTransformF23Kernel(ArrayView<float> w, ArrayView<float> u, int cout, int cin, int rotate)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var slot = FilterSlot.Of(e, cout, cin, rotate);
            var g = Taps.Read(w, slot.Filter, rotate);
            // G g: the three columns of g, each to four rows; then (G g) G^T: row i of G g to four columns.
            Quad c0 = G(g.G00, g.G10, g.G20), c1 = G(g.G01, g.G11, g.G21), c2 = G(g.G02, g.G12, g.G22);
            int plane = slot.Plane, at = slot.At;
            StorePlanes(u, plane, at, 0, G(c0.X0, c1.X0, c2.X0));
            StorePlanes(u, plane, at, 1, G(c0.X1, c1.X1, c2.X1));
            StorePlanes(u, plane, at, 2, G(c0.X2, c1.X2, c2.X2));
            StorePlanes(u, plane, at, 3, G(c0.X3, c1.X3, c2.X3));
        }
    }

    /// <summary>y = A^T m A (+ bias) for every (channel, tile) of M [16, channels, P], into y [N, channels, H, W]; the
    /// outputs of a tile overhanging the plane are not written.</summary>
    static void OutputTransformF23Kernel(ArrayView<float> m, ArrayView<float> bias, ArrayView<float> y, int hasBias, WinogradShape s, int channels, int runs)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.P, plane = channels * s.P;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            int at = t.C * s.P + t.P;
            Quad m0 = LoadPlanes(m, plane, at, 0), m1 = LoadPlanes(m, plane, at, 1), m2 = LoadPlanes(m, plane, at, 2), m3 = LoadPlanes(m, plane, at, 3);
            // A^T m: two rows; then each row times A.
            Quad z0 = m0 + m1 + m2, z1 = m1 - m2 - m3;
            float b = hasBias != 0 ? bias[t.C] : 0f;
            PutRow2(y, runs, s, t, 0, z0.X0 + z0.X1 + z0.X2 + b, z0.X1 - z0.X2 - z0.X3 + b);
            PutRow2(y, runs, s, t, 1, z1.X0 + z1.X1 + z1.X2 + b, z1.X1 - z1.X2 - z1.X3 + b);
        }
    }

    /// <summary>Row i of a 2 x 2 output tile, where it lies inside the plane: one 8-byte store where <paramref name="runs"/>
    /// (OutputRuns), else one float at a time.</summary>
    static void PutRow2(ArrayView<float> y, int runs, WinogradShape s, TileIndex t, int i, float v0, float v1)
    {
        if (runs != 0)
        {
            if (t.H + i < s.H) y.Cast<Float2>()[((t.Plane * s.H + t.H + i) * s.W + t.W) / 2] = new Float2(v0, v1);
            return;
        }
        Put(y, s, t.Plane, t.H + i, t.W, v0);
        Put(y, s, t.Plane, t.H + i, t.W + 1, v1);
    }

    /// <summary>Yhat = A dy A^T for every (channel, slice, tile) of dy [N, channels, H, W] (zero past the plane and past P).</summary>
    static void OutputGradTransformF23Kernel(ArrayView<float> dy, ArrayView<float> yhat, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            bool inside = t.P < s.P;
            float y00 = inside ? At(dy, s, t.Plane, t.H, t.W) : 0f, y01 = inside ? At(dy, s, t.Plane, t.H, t.W + 1) : 0f;
            float y10 = inside ? At(dy, s, t.Plane, t.H + 1, t.W) : 0f, y11 = inside ? At(dy, s, t.Plane, t.H + 1, t.W + 1) : 0f;
            // A dy: the two columns of dy, each to four rows; then row i times A^T.
            Quad c0 = A(y00, y10), c1 = A(y01, y11);
            Store(yhat, s, channels, t, 0, A(c0.X0, c1.X0));
            Store(yhat, s, channels, t, 1, A(c0.X1, c1.X1));
            Store(yhat, s, channels, t, 2, A(c0.X2, c1.X2));
            Store(yhat, s, channels, t, 3, A(c0.X3, c1.X3));
        }
    }

    /// <summary>dw = G^T (sum over slices of dU) G for every filter, from dU [16 * slices, Cout, Cin]; the slices are
    /// added in order, so the result does not depend on the launch.</summary>
    static void WeightGradTransformF23Kernel(ArrayView<float> du, ArrayView<float> dw, int cout, int cin, int slices)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            Quad u0 = SliceSum4(du, e, 0, count, slices), u1 = SliceSum4(du, e, 4, count, slices);
            Quad u2 = SliceSum4(du, e, 8, count, slices), u3 = SliceSum4(du, e, 12, count, slices);
            // G^T u: three rows from four (G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]); then each row times G.
            Quad r0 = u0 + 0.5f * (u1 + u2), r1 = 0.5f * (u1 - u2), r2 = 0.5f * (u1 + u2) + u3;
            GtRow4(dw, e * 9, r0);
            GtRow4(dw, e * 9 + 3, r1);
            GtRow4(dw, e * 9 + 6, r2);
        }
    }

    /// <summary>Row (components first .. first + 3) of dU for filter e, summed over the slices.</summary>
    static Quad SliceSum4(ArrayView<float> du, int e, int first, int count, int slices)
    {
        Quad sum = default;
        for (int sl = 0; sl < slices; sl++)
            sum += new Quad(du[(first * slices + sl) * count + e], du[((first + 1) * slices + sl) * count + e],
                du[((first + 2) * slices + sl) * count + e], du[((first + 3) * slices + sl) * count + e]);
        return sum;
    }

    /// <summary>Writes r G (three values) at dw[f..f + 2].</summary>
    static void GtRow4(ArrayView<float> dw, int f, Quad r)
    {
        dw[f] = r.X0 + 0.5f * (r.X1 + r.X2);
        dw[f + 1] = 0.5f * (r.X1 - r.X2);
        dw[f + 2] = 0.5f * (r.X1 + r.X2) + r.X3;
    }

    // ---- F(4x4, 3x3): the same kernels with 6-value rows ----

    /// <summary>B^T d for a column d of a 6 x 6 input patch.</summary>
    static Six Bt(Six d) => new(4 * d.X0 - 5 * d.X2 + d.X4, -4 * (d.X1 + d.X2) + d.X3 + d.X4, 4 * (d.X1 - d.X2) - d.X3 + d.X4,
        2 * (d.X3 - d.X1) - d.X2 + d.X4, 2 * (d.X1 - d.X3) - d.X2 + d.X4, 4 * d.X1 - 5 * d.X3 + d.X5);

    /// <summary>G g for a column g of a 3x3 kernel (6 rows).</summary>
    static Six G6(float g0, float g1, float g2)
        => new(0.25f * g0, -(g0 + g1 + g2) / 6f, -(g0 - g1 + g2) / 6f, g0 / 24f + g1 / 12f + g2 / 6f, g0 / 24f - g1 / 12f + g2 / 6f, g2);

    /// <summary>A y for a column y of a 4 x 4 output-gradient tile (A = (A^T)^T, 6 x 4).</summary>
    static Six A6(float y0, float y1, float y2, float y3)
        => new(y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + 2 * y1 + 4 * y2 + 8 * y3, y0 - 2 * y1 + 4 * y2 - 8 * y3, y3);

    static Six PatchRow6(ArrayView<float> src, WinogradShape s, int plane, int h, int w0)
        => new(At(src, s, plane, h, w0), At(src, s, plane, h, w0 + 1), At(src, s, plane, h, w0 + 2),
            At(src, s, plane, h, w0 + 3), At(src, s, plane, h, w0 + 4), At(src, s, plane, h, w0 + 5));

    static void Store(ArrayView<float> v, WinogradShape s, int channels, TileIndex t, int row, Six r)
    {
        v[s.At(6 * row, t.Slice, t.C, t.Q, channels)] = r.X0;
        v[s.At(6 * row + 1, t.Slice, t.C, t.Q, channels)] = r.X1;
        v[s.At(6 * row + 2, t.Slice, t.C, t.Q, channels)] = r.X2;
        v[s.At(6 * row + 3, t.Slice, t.C, t.Q, channels)] = r.X3;
        v[s.At(6 * row + 4, t.Slice, t.C, t.Q, channels)] = r.X4;
        v[s.At(6 * row + 5, t.Slice, t.C, t.Q, channels)] = r.X5;
    }

    static void StorePlanes(ArrayView<float> u, int plane, int at, int row, Six r)
    {
        u[(6 * row) * plane + at] = r.X0;
        u[(6 * row + 1) * plane + at] = r.X1;
        u[(6 * row + 2) * plane + at] = r.X2;
        u[(6 * row + 3) * plane + at] = r.X3;
        u[(6 * row + 4) * plane + at] = r.X4;
        u[(6 * row + 5) * plane + at] = r.X5;
    }

    static Six LoadPlanes6(ArrayView<float> m, int plane, int at, int row)
        => new(m[(6 * row) * plane + at], m[(6 * row + 1) * plane + at], m[(6 * row + 2) * plane + at],
            m[(6 * row + 3) * plane + at], m[(6 * row + 4) * plane + at], m[(6 * row + 5) * plane + at]);

    static void InputTransformF43Kernel(ArrayView<float> src, ArrayView<float> v, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            Six d0 = default, d1 = default, d2 = default, d3 = default, d4 = default, d5 = default;
            if (t.P < s.P)
            {
                d0 = PatchRow6(src, s, t.Plane, t.H - 1, t.W - 1);
                d1 = PatchRow6(src, s, t.Plane, t.H, t.W - 1);
                d2 = PatchRow6(src, s, t.Plane, t.H + 1, t.W - 1);
                d3 = PatchRow6(src, s, t.Plane, t.H + 2, t.W - 1);
                d4 = PatchRow6(src, s, t.Plane, t.H + 3, t.W - 1);
                d5 = PatchRow6(src, s, t.Plane, t.H + 4, t.W - 1);
            }
            // B^T d (row i combines patch rows), then each row times B.
            Store(v, s, channels, t, 0, Bt(4f * d0 - 5f * d2 + d4));
            Store(v, s, channels, t, 1, Bt(d3 + d4 - 4f * (d1 + d2)));
            Store(v, s, channels, t, 2, Bt(4f * (d1 - d2) - d3 + d4));
            Store(v, s, channels, t, 3, Bt(2f * (d3 - d1) - d2 + d4));
            Store(v, s, channels, t, 4, Bt(2f * (d1 - d3) - d2 + d4));
            Store(v, s, channels, t, 5, Bt(4f * d1 - 5f * d3 + d5));
        }
    }

    static void WeightTransformF43Kernel(ArrayView<float> w, ArrayView<float> u, int cout, int cin, int rotate)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var slot = FilterSlot.Of(e, cout, cin, rotate);
            var g = Taps.Read(w, slot.Filter, rotate);
            Six c0 = G6(g.G00, g.G10, g.G20), c1 = G6(g.G01, g.G11, g.G21), c2 = G6(g.G02, g.G12, g.G22);
            int plane = slot.Plane, at = slot.At;
            StorePlanes(u, plane, at, 0, G6(c0.X0, c1.X0, c2.X0));
            StorePlanes(u, plane, at, 1, G6(c0.X1, c1.X1, c2.X1));
            StorePlanes(u, plane, at, 2, G6(c0.X2, c1.X2, c2.X2));
            StorePlanes(u, plane, at, 3, G6(c0.X3, c1.X3, c2.X3));
            StorePlanes(u, plane, at, 4, G6(c0.X4, c1.X4, c2.X4));
            StorePlanes(u, plane, at, 5, G6(c0.X5, c1.X5, c2.X5));
        }
    }

    static void OutputTransformF43Kernel(ArrayView<float> m, ArrayView<float> bias, ArrayView<float> y, int hasBias, WinogradShape s, int channels, int runs)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.P, plane = channels * s.P;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            int at = t.C * s.P + t.P;
            Six m0 = LoadPlanes6(m, plane, at, 0), m1 = LoadPlanes6(m, plane, at, 1), m2 = LoadPlanes6(m, plane, at, 2);
            Six m3 = LoadPlanes6(m, plane, at, 3), m4 = LoadPlanes6(m, plane, at, 4), m5 = LoadPlanes6(m, plane, at, 5);
            float b = hasBias != 0 ? bias[t.C] : 0f;
            // A^T m: four rows; then each row times A.
            PutRow4(y, runs, s, t, 0, m0 + m1 + m2 + m3 + m4, b);
            PutRow4(y, runs, s, t, 1, m1 - m2 + 2f * (m3 - m4), b);
            PutRow4(y, runs, s, t, 2, m1 + m2 + 4f * (m3 + m4), b);
            PutRow4(y, runs, s, t, 3, m1 - m2 + 8f * (m3 - m4) + m5, b);
        }
    }

    /// <summary>Output row i of a 4 x 4 tile: z A (+ b), where it lies inside the plane: one 16-byte store where
    /// <paramref name="runs"/> (OutputRuns), else one float at a time.</summary>
    static void PutRow4(ArrayView<float> y, int runs, WinogradShape s, TileIndex t, int i, Six z, float b)
    {
        float v0 = z.X0 + z.X1 + z.X2 + z.X3 + z.X4 + b, v1 = z.X1 - z.X2 + 2 * (z.X3 - z.X4) + b;
        float v2 = z.X1 + z.X2 + 4 * (z.X3 + z.X4) + b, v3 = z.X1 - z.X2 + 8 * (z.X3 - z.X4) + z.X5 + b;
        if (runs != 0)
        {
            if (t.H + i < s.H) y.Cast<Float4>()[((t.Plane * s.H + t.H + i) * s.W + t.W) / 4] = new Float4(v0, v1, v2, v3);
            return;
        }
        Put(y, s, t.Plane, t.H + i, t.W, v0);
        Put(y, s, t.Plane, t.H + i, t.W + 1, v1);
        Put(y, s, t.Plane, t.H + i, t.W + 2, v2);
        Put(y, s, t.Plane, t.H + i, t.W + 3, v3);
    }

    static void OutputGradTransformF43Kernel(ArrayView<float> dy, ArrayView<float> yhat, WinogradShape s, int channels)
    {
        int stride = Grid.DimX * Group.DimX, count = channels * s.Slices * s.SliceTiles;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            var t = s.Item(e, channels);
            Quad r0 = default, r1 = default, r2 = default, r3 = default;
            if (t.P < s.P)
            {
                r0 = PatchRow4(dy, s, t.Plane, t.H, t.W);
                r1 = PatchRow4(dy, s, t.Plane, t.H + 1, t.W);
                r2 = PatchRow4(dy, s, t.Plane, t.H + 2, t.W);
                r3 = PatchRow4(dy, s, t.Plane, t.H + 3, t.W);
            }
            // A dy: the four columns of dy, each to six rows; then row i times A^T.
            Six c0 = A6(r0.X0, r1.X0, r2.X0, r3.X0), c1 = A6(r0.X1, r1.X1, r2.X1, r3.X1);
            Six c2 = A6(r0.X2, r1.X2, r2.X2, r3.X2), c3 = A6(r0.X3, r1.X3, r2.X3, r3.X3);
            Store(yhat, s, channels, t, 0, A6(c0.X0, c1.X0, c2.X0, c3.X0));
            Store(yhat, s, channels, t, 1, A6(c0.X1, c1.X1, c2.X1, c3.X1));
            Store(yhat, s, channels, t, 2, A6(c0.X2, c1.X2, c2.X2, c3.X2));
            Store(yhat, s, channels, t, 3, A6(c0.X3, c1.X3, c2.X3, c3.X3));
            Store(yhat, s, channels, t, 4, A6(c0.X4, c1.X4, c2.X4, c3.X4));
            Store(yhat, s, channels, t, 5, A6(c0.X5, c1.X5, c2.X5, c3.X5));
        }
    }

    static void WeightGradTransformF43Kernel(ArrayView<float> du, ArrayView<float> dw, int cout, int cin, int slices)
    {
        int stride = Grid.DimX * Group.DimX, count = cout * cin;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            Six u0 = SliceSum6(du, e, 0, count, slices), u1 = SliceSum6(du, e, 6, count, slices), u2 = SliceSum6(du, e, 12, count, slices);
            Six u3 = SliceSum6(du, e, 18, count, slices), u4 = SliceSum6(du, e, 24, count, slices), u5 = SliceSum6(du, e, 30, count, slices);
            // G^T u: three rows from six (G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0; 0 -1/6 -1/6 1/6 1/6 1]);
            // then each row times G.
            GtRow6(dw, e * 9, 0.25f * u0 - (1f / 6) * (u1 + u2) + (1f / 24) * (u3 + u4));
            GtRow6(dw, e * 9 + 3, (1f / 6) * (u2 - u1) + (1f / 12) * (u3 - u4));
            GtRow6(dw, e * 9 + 6, (1f / 6) * (u3 + u4 - u1 - u2) + u5);
        }
    }

    static Six SliceSum6(ArrayView<float> du, int e, int first, int count, int slices)
    {
        Six sum = default;
        for (int sl = 0; sl < slices; sl++)
            sum += new Six(du[(first * slices + sl) * count + e], du[((first + 1) * slices + sl) * count + e],
                du[((first + 2) * slices + sl) * count + e], du[((first + 3) * slices + sl) * count + e],
                du[((first + 4) * slices + sl) * count + e], du[((first + 5) * slices + sl) * count + e]);
        return sum;
    }

    static void GtRow6(ArrayView<float> dw, int f, Six r)
    {
        dw[f] = 0.25f * r.X0 - (r.X1 + r.X2) / 6f + (r.X3 + r.X4) / 24f;
        dw[f + 1] = (r.X2 - r.X1) / 6f + (r.X3 - r.X4) / 12f;
        dw[f + 2] = (r.X3 + r.X4 - r.X1 - r.X2) / 6f + r.X5;
    }
}
