using ILGPU;
using ILGPU.Runtime;
using ILGPU.Util;
// The entry shape of the register-tiled versions (v5, v8-v11, v14, v15): x, w, dy, bias, o, geometry, pass, hasBias, m, n, k, tdim, splits, partial.
using RegisterTilesEntry = System.Action<ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    ILGPU.ArrayView<float>, KernelDiffusion.Kernels.ConvGeometry, int, int, int, int, int, int, int, ILGPU.ArrayView<float>>;

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

public enum ConvVersion { V1Direct = 1, V2Tiled = 2, V3Planes = 3, V4Blocked = 4, V5RegisterTiles = 5, V6Tf32 = 6, V7HoistedTf32 = 7, V8Hoisted = 8, V9Hoisted8 = 9, V10Vector = 10, V11Vector4 = 11, V12Winograd = 12, V13Winograd4 = 13, V14Pipelined = 14, V15Pipelined4 = 15, V16Gemm1x1 = 16, V17Gemm1x1Weights = 17 }

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
/// grid-stride loop, no barriers. v2: T x T shared-memory tiles, as Gemm v2. v3: one output plane per thread. v4: register
/// blocks of 8 channels x 4 columns per call of a tile function (the CPU accelerator's form). v5: v2 with GEMM v4's
/// 64 x 64 tiles and 4 x 4 register blocks. v6, v7: tf32 tensor cores (opt-in). v8: v5 with hoisted gathers. v9: v8
/// with GEMM v6's 128 x 128 tiles and 8 x 8 blocks. v10: v9 with GEMM v7's 16-byte shared reads. v11: v8 with 16-byte
/// shared reads (GEMM v8's Block4Runs). v12, v13: Winograd F(2x2, 3x3) and F(4x4, 3x3) through batched GEMMs
/// (Winograd.cs) for 3x3 stride-1 pad-1 convolutions; other geometries run the accelerator's default version. v14, v15:
/// v10 and v11 software-pipelined as GEMM v10 and v11 (the next stage's gathers in flight during this stage's FMAs).
/// Output elements a pass does not reach (none, for valid geometry) are not written.</summary>
public static class Conv2d
{
    const int MaxTile = 16;
    /// <summary>v5 and v8: each thread's block is BlockRows x BlockRows outputs (v9: Block8Rows); tiles advance BlockK
    /// values of k at a time.</summary>
    const int BlockRows = 4, Block8Rows = 8, BlockK = 8;

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

    /// <summary>How v5-v8 stage a (tileM x stageK) tile of A and a (stageK x tileN) tile of B into shared memory:
    /// A(i, k) at at[i * aiStride + k * akStride], B(k, j) at bt[k * bkStride + j], zeros past the edges, rounded to
    /// tf32 when tf32 is set. A struct type argument, so each version's kernel is compiled with its own staging (and
    /// its own register allocation: one kernel with a runtime switch took v5 from 48 to 72 registers).</summary>
    interface IConvStaging
    {
        void Stage(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass,
            ArrayView<float> at, int aiStride, int akStride, ArrayView<float> bt, int bkStride, bool tf32,
            int m, int n, int m0, int n0, int k0, int kEnd, int tileM, int tileN, int stageK, int t, int threads);
    }

    /// <summary>v5 and v6: v2's gathers (LoadA, LoadB), which decode every value's indices by division.</summary>
    struct GatheredStaging : IConvStaging
    {
        public readonly void Stage(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass,
            ArrayView<float> at, int aiStride, int akStride, ArrayView<float> bt, int bkStride, bool tf32,
            int m, int n, int m0, int n0, int k0, int kEnd, int tileM, int tileN, int stageK, int t, int threads)
        {
            for (int e = t; e < tileM * stageK; e += threads)
            {
                int i = e / stageK, ka = e - i * stageK;
                float v = m0 + i < m && k0 + ka < kEnd ? LoadA(w, dy, g, pass, m0 + i, k0 + ka) : 0f;
                at[i * aiStride + ka * akStride] = tf32 ? TensorCore.RoundTf32(v) : v;
            }
            for (int e = t; e < stageK * tileN; e += threads)
            {
                int kb = e / tileN, j = e - kb * tileN;   // consecutive threads: consecutive output positions
                float v = k0 + kb < kEnd && n0 + j < n ? LoadB(x, dy, g, pass, k0 + kb, n0 + j) : 0f;
                bt[kb * bkStride + j] = tf32 ? TensorCore.RoundTf32(v) : v;
            }
        }
    }

    /// <summary>v7 and v8: StageHoisted.</summary>
    struct HoistedStaging : IConvStaging
    {
        public readonly void Stage(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass,
            ArrayView<float> at, int aiStride, int akStride, ArrayView<float> bt, int bkStride, bool tf32,
            int m, int n, int m0, int n0, int k0, int kEnd, int tileM, int tileN, int stageK, int t, int threads)
            => StageHoisted(x, w, dy, g, pass, at, aiStride, akStride, bt, bkStride, tf32, m, n, m0, n0, k0, kEnd, tileM, tileN, stageK, t, threads);
    }

    /// <summary>v5: v2's implicit GEMM with GEMM v4's register blocking. A group of tdim x tdim threads computes a
    /// (4 tdim) x (4 tdim) tile (64 x 64 on GPUs), each thread a Block4 of outputs tdim apart; per step of k a thread
    /// reads 8 shared values for 16 multiply-adds, where v2 reads 2 for 1. The gathers (LoadA, LoadB) are v2's.
    /// With splits &gt; 1 (the weight gradient, whose long K = N*Ho*Wo and few tiles would leave most of a GPU idle), work
    /// item (split, tile) sums its slice of k into partial[split, i, j]; SplitSum adds the slices in a fixed order.</summary>
    static void V5Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => RegisterTiles<GatheredStaging, Block4>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v8: v5 with StageHoisted's staging. With 256 threads a thread stages one k of A (t % 8) down rows
    /// t / 8 + 32s and one column of B (t % 64) down rows t / 64 + 4s; any group size works.</summary>
    static void V8Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => RegisterTiles<HoistedStaging, Block4>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v9: v8 with GEMM v6's 8 x 8 blocks: (8 tdim) x (8 tdim) tiles (128 x 128 on GPUs), 16 shared reads per
    /// 64 FMAs, and each staged value serving 128 outputs instead of 64, so the gathers cost half as much per FMA.</summary>
    static void V9Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => RegisterTiles<HoistedStaging, Block8>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v10: v9 reading its blocks 16 bytes at a time (Block8Runs, as GEMM v7).</summary>
    static void V10Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => RegisterTiles<HoistedStaging, Block8Runs>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v11: v8 reading its 4 x 4 blocks 16 bytes at a time (Block4Runs, as GEMM v8): v10's gain for 64 x 64 tiles,
    /// which suit the 64-channel layers that leave half of v9's and v10's tiles idle.</summary>
    static void V11Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => RegisterTiles<HoistedStaging, Block4Runs>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v14: v10 software-pipelined (PipelinedTiles). Launch bounds as GEMM v10's: 2 groups of 256 threads per
    /// multiprocessor.</summary>
    [LaunchBounds(256, 2)]
    static void V14Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => PipelinedTiles<Block8Runs>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    /// <summary>v15: v11 software-pipelined (PipelinedTiles), for the 64-channel layers.</summary>
    static void V15Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        => PipelinedTiles<Block4Runs>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, tdim, splits, partial);

    static void RegisterTiles<TStaging, TBlock>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        where TStaging : struct, IConvStaging where TBlock : struct, IRegisterBlock<TBlock>
    {
        // [k][i] and [k][j], k-major, room for the larger block, 16-byte aligned for Block8Runs.
        var at = SharedMemory.Allocate<Float4>(BlockK * Block8Rows * MaxTile / 4).Cast<float>();
        var bt = SharedMemory.Allocate<Float4>(BlockK * Block8Rows * MaxTile / 4).Cast<float>();
        int rows = default(TBlock).Rows;
        int tile = rows * tdim, threads = tdim * tdim, t = Group.IdxX, tx = t % tdim, ty = t / tdim;
        var items = SplitTiles.Create(m, n, kk, tile, splits, BlockK);
        for (int u = Grid.IdxX; u < items.Count; u += Grid.DimX)
        {
            var (split, m0, n0, kBegin, kEnd) = items.At(u);
            var acc = default(TBlock);
            for (int k0 = kBegin; k0 < kEnd; k0 += BlockK)
            {
                default(TStaging).Stage(x, w, dy, g, pass, at, 1, tile, bt, tile, false, m, n, m0, n0, k0, kEnd, tile, tile, BlockK, t, threads);
                Group.Barrier();
                for (int k = 0; k < BlockK; k++) acc = acc.After(at, bt, k * tile, ty, tx, tdim);
                Group.Barrier();
            }
            StoreBlock(o, bias, g, pass, hasBias, m, n, m0, n0, acc, ty, tx, tdim, split, splits, partial);
        }
    }

    /// <summary>A thread's register block at tile (m0, n0), what lies inside: into the output, or with splits &gt; 1 into
    /// its slice of partial.</summary>
    static void StoreBlock<TBlock>(ArrayView<float> o, ArrayView<float> bias, ConvGeometry g, int pass, int hasBias, int m, int n,
        int m0, int n0, TBlock acc, int ty, int tx, int tdim, int split, int splits, ArrayView<float> partial)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        for (int i = 0; i < acc.Rows; i++)
            for (int j = 0; j < acc.Rows; j++)
            {
                int row = m0 + acc.Offset(i, ty, tdim), col = n0 + acc.Offset(j, tx, tdim);
                if (row >= m || col >= n) continue;
                if (splits > 1) partial[(split * m + row) * n + col] = acc.Get(i, j);
                else Store(o, bias, g, pass, hasBias, row, col, acc.Get(i, j));
            }
    }

    /// <summary>v14 and v15: RegisterTiles software-pipelined, as GEMM v10 (Gemm.PipelinedTiles): two shared buffers per
    /// operand; while the group multiplies the stage in one, each thread gathers a chunk of each operand's next stage
    /// into registers (ChunkA, ChunkB), and stores them into the other after the FMAs; one barrier per stage. With 256
    /// threads a chunk is a thread's whole share of a 128-wide stage; in smaller groups (the CPU accelerator's) the rest
    /// is staged after the FMAs, unpipelined. Staging follows StageHoisted's pattern, in chunks.</summary>
    static void PipelinedTiles<TBlock>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int tdim, int splits, ArrayView<float> partial)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        const int Buffer = BlockK * Block8Rows * MaxTile;   // floats of one operand's stage: buffers at 0 and Buffer
        var at = SharedMemory.Allocate<Float4>(2 * Buffer / 4).Cast<float>();   // [k][i], k-major, 16-byte aligned
        var bt = SharedMemory.Allocate<Float4>(2 * Buffer / 4).Cast<float>();   // [k][j]
        int tile = default(TBlock).Rows * tdim, threads = tdim * tdim, t = Group.IdxX, tx = t % tdim, ty = t / tdim;
        var items = SplitTiles.Create(m, n, kk, tile, splits, BlockK);
        for (int u = Grid.IdxX; u < items.Count; u += Grid.DimX)
        {
            var (split, m0, n0, kBegin, kEnd) = items.At(u);
            var acc = default(TBlock);
            StageChunks(x, w, dy, g, pass, at, bt, 0, m, n, m0, n0, kBegin, kEnd, tile, t, threads);
            Group.Barrier();
            for (int k0 = kBegin, cur = 0; k0 < kEnd; k0 += BlockK, cur = Buffer - cur)
            {
                int kNext = k0 + BlockK, next = Buffer - cur;
                // Past the last stage (kNext >= kEnd) nothing is gathered and zeros come back.
                Quad pa = ChunkA(w, dy, g, pass, m, m0, kNext, kEnd, tile, t), pb = ChunkB(x, dy, g, pass, n, n0, kNext, kEnd, tile, t);
                for (int k = 0; k < BlockK; k++) acc = acc.After(at, bt, cur + k * tile, ty, tx, tdim);
                if (kNext < kEnd)
                {
                    PutChunkA(at, next, pa, tile, t);
                    PutChunkB(bt, next, pb, tile, t);
                    StageChunks(x, w, dy, g, pass, at, bt, next, m, n, m0, n0, kNext, kEnd, tile, t + threads, threads);
                }
                Group.Barrier();
            }
            StoreBlock(o, bias, g, pass, hasBias, m, n, m0, n0, acc, ty, tx, tdim, split, splits, partial);
        }
    }

    /// <summary>Chunks in a stage of tile x BlockK values of one operand (4 values a chunk).</summary>
    static int Chunks(int tile) => tile * BlockK / 4;

    /// <summary>Chunk c of A's stage at k0: k = k0 + c mod BlockK, rows i, i + tile/4, i + tile/2, i + 3 tile/4 from
    /// i = m0 + c / BlockK (StageHoisted's run down rows, its base address found once); 0 past the edges and for c past
    /// the stage's chunks.</summary>
    static Quad ChunkA(ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass, int m, int m0, int k0, int kEnd, int tile, int c)
    {
        int rr = g.R * g.R, hwo = g.Ho * g.Wo, quarter = tile / 4, k = k0 + c % BlockK, i = m0 + c / BlockK;
        var src = pass == 2 ? dy : w;
        int stride = pass == 0 ? g.Cin * rr : pass == 1 ? rr : hwo;
        int at = (pass == 0 ? k : pass == 1 ? (k / rr) * g.Cin * rr + k % rr : (k / hwo) * g.Cout * hwo + k % hwo) + i * stride;
        int step = quarter * stride, rows = k < kEnd && c < Chunks(tile) ? m - i : 0;   // value q exists when rows > q quarter
        return new Quad(rows > 0 ? src[at] : 0f, rows > quarter ? src[at + step] : 0f,
            rows > 2 * quarter ? src[at + 2 * step] : 0f, rows > 3 * quarter ? src[at + 3 * step] : 0f);
    }

    /// <summary>Chunk c of B's stage at k0: column j = n0 + c mod tile, rows kb, kb + 2, kb + 4, kb + 6 from kb = c / tile
    /// (BlockK / 4 apart), the column's digits found once and the rows' carried, as StageHoisted's.</summary>
    static Quad ChunkB(ArrayView<float> x, ArrayView<float> dy, ConvGeometry g, int pass, int n, int n0, int k0, int kEnd, int tile, int c)
    {
        int rowMid = pass == 2 ? g.Ho : g.R, rowLo = pass == 2 ? g.Wo : g.R;
        int colMid = pass == 0 ? g.Ho : pass == 1 ? g.H : g.R, colLo = pass == 0 ? g.Wo : pass == 1 ? g.W : g.R;
        int j = n0 + c % tile, k = k0 + c / tile, step = BlockK / 4;
        bool inside = j < n && c < Chunks(tile);
        var col = Digits.Of(j, colMid, colLo);
        var row = Digits.Of(k, rowMid, rowLo);
        float v0 = inside && k < kEnd ? Gather(x, dy, g, pass, row, col) : 0f;
        row = Digits.Plus(row, step, rowMid, rowLo);
        float v1 = inside && k + step < kEnd ? Gather(x, dy, g, pass, row, col) : 0f;
        row = Digits.Plus(row, step, rowMid, rowLo);
        float v2 = inside && k + 2 * step < kEnd ? Gather(x, dy, g, pass, row, col) : 0f;
        row = Digits.Plus(row, step, rowMid, rowLo);
        float v3 = inside && k + 3 * step < kEnd ? Gather(x, dy, g, pass, row, col) : 0f;
        return new Quad(v0, v1, v2, v3);
    }

    /// <summary>ChunkA's values into the k-major shared tile at offset buffer.</summary>
    static void PutChunkA(ArrayView<float> at, int buffer, Quad v, int tile, int c)
    {
        if (c >= Chunks(tile)) return;
        int slot = buffer + (c % BlockK) * tile + c / BlockK, quarter = tile / 4;
        at[slot] = v.X0;
        at[slot + quarter] = v.X1;
        at[slot + 2 * quarter] = v.X2;
        at[slot + 3 * quarter] = v.X3;
    }

    /// <summary>ChunkB's values into the k-major shared tile at offset buffer.</summary>
    static void PutChunkB(ArrayView<float> bt, int buffer, Quad v, int tile, int c)
    {
        if (c >= Chunks(tile)) return;
        int slot = buffer + (c / tile) * tile + c % tile, step = BlockK / 4 * tile;
        bt[slot] = v.X0;
        bt[slot + step] = v.X1;
        bt[slot + 2 * step] = v.X2;
        bt[slot + 3 * step] = v.X3;
    }

    /// <summary>Stages chunks c = first, first + threads, ... of both operands' stage at k0 into the shared tiles at offset buffer.</summary>
    static void StageChunks(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass, ArrayView<float> at,
        ArrayView<float> bt, int buffer, int m, int n, int m0, int n0, int k0, int kEnd, int tile, int first, int threads)
    {
        for (int c = first; c < Chunks(tile); c += threads)
        {
            PutChunkA(at, buffer, ChunkA(w, dy, g, pass, m, m0, k0, kEnd, tile, c), tile, c);
            PutChunkB(bt, buffer, ChunkB(x, dy, g, pass, n, n0, k0, kEnd, tile, c), tile, c);
        }
    }

    /// <summary>v6: v5's implicit GEMM on tf32 tensor cores, with GEMM v5's block tiling (TensorCore: four warps, a
    /// 64 x 64 tile, a 32 x 32 WarpTile per warp). The gathers are v2's, rounded to tf32 as they are staged; the
    /// weight gradient splits k as v5's does. Opt-in: its operands keep 10 mantissa bits.</summary>
    static void V6Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int splits, ArrayView<float> partial)
        => TensorCoreTiles<GatheredStaging>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, splits, partial);

    /// <summary>v7: v6 with StageHoisted's staging. With 128 threads a thread stages one k of A (t % 16) down rows
    /// t / 16 + 8s and one column of B (t % 64) down rows t / 64 + 2s.</summary>
    static void V7Kernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int splits, ArrayView<float> partial)
        => TensorCoreTiles<HoistedStaging>(x, w, dy, bias, o, g, pass, hasBias, m, n, kk, splits, partial);

    static void TensorCoreTiles<TStaging>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ArrayView<float> bias, ArrayView<float> o,
        ConvGeometry g, int pass, int hasBias, int m, int n, int kk, int splits, ArrayView<float> partial)
        where TStaging : struct, IConvStaging
    {
        const int tile = TensorCore.Tile, stage = TensorCore.StageK, sa = TensorCore.StrideA, sb = TensorCore.StrideB;
        var at = SharedMemory.Allocate<float>(tile * sa);     // [i][k]
        var bt = SharedMemory.Allocate<float>(stage * sb);    // [k][j]
        var scratch = TensorCore.Scratch();
        WarpTile.Declare();
        int t = Group.IdxX, warp = Warp.WarpIdx, wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
        var items = SplitTiles.Create(m, n, kk, tile, splits, stage);
        for (int u = Grid.IdxX; u < items.Count; u += Grid.DimX)
        {
            var (split, m0, n0, kBegin, kEnd) = items.At(u);
            var acc = WarpTile.Zero();
            for (int k0 = kBegin; k0 < kEnd; k0 += stage)
            {
                default(TStaging).Stage(x, w, dy, g, pass, at, sa, 1, bt, sb, true, m, n, m0, n0, k0, kEnd, tile, tile, stage, t, TensorCore.Threads);
                Group.Barrier();
                for (int k = 0; k < stage; k += 8) acc = WarpTile.Step(acc, at, wm, sa, bt, wn, sb, k, scratch);
                Group.Barrier();
            }
            // Lane (g, t) holds rows g and g + 8 and columns 2t and 2t + 1 of each 16 x 8 mma tile.
            int lane = Warp.LaneIdx, row0 = m0 + wm + (lane >> 2), col0 = n0 + wn + 2 * (lane & 3);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    for (int e = 0; e < 4; e++)
                    {
                        int row = row0 + 16 * i + 8 * (e >> 1), col = col0 + 8 * j + (e & 1);
                        if (row >= m || col >= n) continue;
                        if (splits > 1) partial[(split * m + row) * n + col] = acc.Get(i, j, e);
                        else Store(o, bias, g, pass, hasBias, row, col, acc.Get(i, j, e));
                    }
        }
    }
    /// <summary>A position in mixed radix (Hi, Mid, Lo) with Mid in [0, midRadix) and Lo in [0, loRadix): a GEMM row
    /// or column of a convolution as (channel or sample, kernel row or output row, kernel column or output column).</summary>
    struct Digits
    {
        public int Hi, Mid, Lo;

        public static Digits Of(int k, int midRadix, int loRadix)
        {
            int plane = midRadix * loRadix, hi = k / plane, rest = k - hi * plane, mid = rest / loRadix;
            return new Digits { Hi = hi, Mid = mid, Lo = rest - mid * loRadix };
        }

        /// <summary>k + by, carrying without dividing (by is a few rows: the loops run a few times at most).</summary>
        public static Digits Plus(Digits d, int by, int midRadix, int loRadix)
        {
            d.Lo += by;
            while (d.Lo >= loRadix) { d.Lo -= loRadix; d.Mid++; }
            while (d.Mid >= midRadix) { d.Mid -= midRadix; d.Hi++; }
            return d;
        }
    }

    /// <summary>HoistedStaging (v7, v8): a (tileM x stageK) tile of A and a (stageK x tileN) tile of B into shared memory,
    /// with the gathers' index arithmetic out of the per-value loop. A thread stages A at one or a few fixed k (t mod
    /// stageK), each a run A(i, k) = src[aBase(k) + i * aStride], and B at one or a few fixed columns j (t mod tileN),
    /// each with its (sample, row, column) digits found once, down rows t / tileN + s * rowsPerPass whose digits are
    /// carried without dividing. Digits, per pass: forward B rows (ci, kh, kw), columns (n, oh, ow); input grad B rows
    /// (co, kh, kw), columns (n, ih, iw); weight grad B rows (n, oh, ow), columns (ci, kh, kw). v2, v5 and v6 divide
    /// 6-8 times per staged value. Shared layouts: A(i, k) at at[i * aiStride + k * akStride], B(k, j) at
    /// bt[k * bkStride + j]; with tf32 set, values are rounded to tf32 as they are stored.</summary>
    static void StageHoisted(ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy, ConvGeometry g, int pass,
        ArrayView<float> at, int aiStride, int akStride, ArrayView<float> bt, int bkStride, bool tf32,
        int m, int n, int m0, int n0, int k0, int kEnd, int tileM, int tileN, int stageK, int t, int threads)
    {
        int rr = g.R * g.R, hwo = g.Ho * g.Wo;
        var aSrc = pass == 2 ? dy : w;
        int aStride = pass == 0 ? g.Cin * rr : pass == 1 ? rr : hwo;
        int aCols = XMin(threads, stageK), aRows = threads / aCols;
        for (int ka = t % aCols; ka < stageK; ka += aCols)
        {
            int k = k0 + ka;
            int aBase = pass == 0 ? k : pass == 1 ? (k / rr) * g.Cin * rr + k % rr : (k / hwo) * g.Cout * hwo + k % hwo;
            for (int i = t / aCols; i < tileM; i += aRows)
            {
                float v = m0 + i < m && k < kEnd ? aSrc[aBase + (m0 + i) * aStride] : 0f;
                at[i * aiStride + ka * akStride] = tf32 ? TensorCore.RoundTf32(v) : v;
            }
        }
        int rowMid = pass == 2 ? g.Ho : g.R, rowLo = pass == 2 ? g.Wo : g.R;
        int colMid = pass == 0 ? g.Ho : pass == 1 ? g.H : g.R, colLo = pass == 0 ? g.Wo : pass == 1 ? g.W : g.R;
        int bCols = XMin(threads, tileN), bRows = threads / bCols;
        for (int jj = t % bCols; jj < tileN; jj += bCols)
        {
            int j = n0 + jj;
            var col = Digits.Of(j, colMid, colLo);
            var row = Digits.Of(k0 + t / bCols, rowMid, rowLo);
            for (int kb = t / bCols; kb < stageK; kb += bRows)
            {
                float v = k0 + kb < kEnd && j < n ? Gather(x, dy, g, pass, row, col) : 0f;
                bt[kb * bkStride + jj] = tf32 ? TensorCore.RoundTf32(v) : v;
                row = Digits.Plus(row, bRows, rowMid, rowLo);
            }
        }
    }

    /// <summary>B(k, j) from its row digits (forward (ci, kh, kw), input grad (co, kh, kw), weight grad (n, oh, ow)) and
    /// column digits (forward (n, oh, ow), input grad (n, ih, iw), weight grad (ci, kh, kw)).</summary>
    static float Gather(ArrayView<float> x, ArrayView<float> dy, ConvGeometry g, int pass, Digits row, Digits col)
    {
        if (pass == 0) return g.Input(x, col.Hi, row.Hi, col.Mid, col.Lo, row.Mid, row.Lo);
        if (pass == 1) return g.OutputGrad(dy, col.Hi, row.Hi, col.Mid, col.Lo, row.Mid, row.Lo);
        return g.Input(x, row.Hi, col.Hi, row.Mid, row.Lo, col.Mid, col.Lo);
    }

    /// <summary>Whether v16 and v17 compute this geometry themselves: a 1x1 kernel at stride 1 without padding.</summary>
    public static bool IsPointwise(ConvGeometry g) => g.R == 1 && g.S == 1 && g.P == 0;

    /// <summary>v16: a 1x1 stride-1 convolution is a GEMM per sample over one shared weight, run as MatMul's GEMMs are
    /// (<paramref name="gemm"/>): forward Y[n] (Cout x HW) = W (Cout x Cin) X[n] (Cin x HW), then the bias; input
    /// gradient dX[n] (Cin x HW) = W^T dY[n]; v17's weight gradient dW = sum over n of dY[n] X[n]^T, a GEMM per sample into
    /// <paramref name="scratch"/> [N, Cout, Cin] and their sum in sample order (deterministic; one sample: no scratch).</summary>
    static void RunPointwise(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o, GemmRunner gemm, ArrayView<float> scratch)
    {
        int plane = g.H * g.W;
        if (pass == ConvPass.WeightGrad)
        {
            bool alone = g.N == 1;
            gemm(dy, x, alone ? o : scratch, new GemmShape
            {
                Batch = g.N, M = g.Cout, N = g.Cin, K = plane, TransB = 1, StrideA = g.Cout * plane, StrideB = g.Cin * plane, StrideC = g.Cout * g.Cin, Alpha = 1,
            });
            if (!alone) SumSplits(acc, scratch, o, g.N, g.Cout, g.Cin);
            return;
        }
        if (pass == ConvPass.InputGrad)
        {
            gemm(w, dy, o, new GemmShape
            {
                Batch = g.N, M = g.Cin, N = plane, K = g.Cout, TransA = 1, StrideA = 0, StrideB = g.Cout * plane, StrideC = g.Cin * plane, Alpha = 1,
            });
            return;
        }
        // The bias after the GEMM, not as C with Beta 1: GEMM v14 and v15 store C 16 bytes at a time only where Beta is 0.
        gemm(w, x, o, new GemmShape
        {
            Batch = g.N, M = g.Cout, N = plane, K = g.Cin, StrideA = 0, StrideB = g.Cin * plane, StrideC = g.Cout * plane, Alpha = 1,
        });
        if (!hasBias) return;
        int[] y = [g.N, g.Cout, plane];
        Elementwise.Binary(acc, BinaryOp.Add, o, bias, o, Broadcast4.Create(y, [g.Cout, 1], y), g.N * g.Cout * plane);   // in place
    }

    /// <summary>o[e] = sum over s of partial[s, e], s in order (deterministic): the weight gradient's layout is [m, n].</summary>
    static void SplitSumKernel(ArrayView<float> partial, ArrayView<float> o, int splits, int count)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int e = Grid.GlobalIndex.X; e < count; e += stride)
        {
            float sum = 0;
            for (int s = 0; s < splits; s++) sum += partial[s * count + e];
            o[e] = sum;
        }
    }

    /// <summary>The scratch floats a pass of a version wants from its caller (Run's scratch): v5-v8's weight
    /// gradient, split in WeightGradSplits slices, wants a [slices, Cout, Cin*R*R] buffer; everything else none.</summary>
    public static long ScratchLength(Accelerator acc, ConvGeometry g, ConvPass pass, ConvVersion version)
    {
        if (!Covers(g, version)) return ScratchLength(acc, g, pass, Choose(acc, g));   // the default runs (Resolve)
        if (WinogradTile(version) is > 0 and var tile)   // its transformed operands, every pass
            return Winograd.ScratchFloats(g, pass, Winograd.Slices(acc, g, tile), tile);
        if (version == ConvVersion.V17Gemm1x1Weights)   // its weight gradient's per-sample products
            return pass == ConvPass.WeightGrad && g.N > 1 ? (long)g.N * g.Cout * g.Cin : 0;
        if (version == ConvVersion.V16Gemm1x1)   // its weight gradient is the direct default's
            return pass == ConvPass.WeightGrad ? ScratchLength(acc, g, pass, DirectDefault(acc)) : 0;
        if (version < ConvVersion.V5RegisterTiles || pass != ConvPass.WeightGrad) return 0;   // v5 and every later version split
        int splits = WeightGradSplits(acc, g, version);
        return splits > 1 ? (long)splits * g.Cout * g.Cin * g.R * g.R : 0;
    }

    /// <summary>The most slices a weight gradient splits k into: two work items per multiprocessor of the largest GPUs
    /// at one tile.</summary>
    public const int MaxSplits = 512;

    /// <summary>How many slices of k the weight gradient of v5 and later takes on this accelerator: enough work items for
    /// two per multiprocessor, each slice at least 512 long, up to MaxSplits; 1 on the CPU accelerator (its two cores are
    /// already busy). v5-v8, v11 and v15 have 64 x 64 tiles on GPUs, v9, v10 and v14 128 x 128 (so more slices). The cap
    /// was 32 until the H100's training profile (bench/results/h100-2026-11-27b, call 1) showed the 1x1 convolutions' weight
    /// gradients (one or two tiles, k = N H W = 200704) taking 2.1 ms each in 32 groups on 132 multiprocessors.</summary>
    public static int WeightGradSplits(Accelerator acc, ConvGeometry g, ConvVersion version = ConvVersion.V5RegisterTiles)
    {
        if (Launch.IsCpu(acc)) return 1;
        var (m, n, kk) = Dims(g, ConvPass.WeightGrad);
        int tdim = Launch.SquareSide(acc, MaxTile);
        int tile = Math.Max(BlockRows, RegisterBlockRows(version)) * tdim;
        long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
        long wanted = (2L * acc.NumMultiprocessors + tiles - 1) / tiles;
        return (int)Math.Clamp(Math.Min(wanted, kk / 512), 1, MaxSplits);
    }

    // ---- v3: one plane per thread, for the CPU accelerator ----
    // Each unit of work owns one output plane (forward: (n, co); input grad: (n, ci)) or one filter (weight grad:
    // (co, ci)), so it may accumulate in place; the innermost loop walks a row with no division. Few, long units
    // suit the CPU accelerator (one thread per core), not a GPU.

    /// <summary>First and last output column whose input column ow*S - P + kw lies inside [0, W); lo &gt; hi when none.</summary>
    static int ColumnLo(ConvGeometry g, int kw) => g.P - kw <= 0 ? 0 : (g.P - kw + g.S - 1) / g.S;
    static int ColumnHi(ConvGeometry g, int kw) => g.W - 1 + g.P - kw < 0 ? -1 : XMin(g.Wo - 1, (g.W - 1 + g.P - kw) / g.S);
    static int XMin(int a, int b) => a < b ? a : b;

    /// <summary>The work items of the register-tiled and tensor-core versions: the m x n output cut in tile x tile blocks,
    /// times Splits slices of k, each a whole number of stages (the weight gradient's split-k; 1 slice otherwise). Item u
    /// is block u mod Tiles of slice u / Tiles.</summary>
    struct SplitTiles
    {
        int tile, tilesN, tiles, chunk, kk;

        public int Count;

        public static SplitTiles Create(int m, int n, int kk, int tile, int splits, int stage)
        {
            int tilesN = (n + tile - 1) / tile, tiles = ((m + tile - 1) / tile) * tilesN;
            return new SplitTiles
            {
                tile = tile, tilesN = tilesN, tiles = tiles, kk = kk, Count = tiles * splits,
                chunk = ((kk + splits - 1) / splits + stage - 1) / stage * stage,
            };
        }

        /// <summary>Item u: its slice, its block's first row and column, and its range of k.</summary>
        public readonly (int Split, int M0, int N0, int KBegin, int KEnd) At(int u)
        {
            int split = u / tiles, tu = u - split * tiles;
            return (split, (tu / tilesN) * tile, (tu % tilesN) * tile, split * chunk, XMin(kk, (split + 1) * chunk));
        }
    }

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

    // ---- v4: register blocks, for the CPU accelerator ----
    // Each call of a tile function computes a 8 x 4 block of results in scalar locals (not a local array: ILGPU would
    // put it in memory): forward, 8 output channels x 4 columns of one output row; input grad, 8 input channels x
    // 4 columns of one input row; weight grad, 8 output x 4 input channels of one tap. Its loop reads 12 values
    // for 32 multiply-adds, walks rows with unit (or S) stride and tests no padding: columns whose taps leave the
    // image take a one-column function with the tests. Channel counts that are not a multiple of the block repeat the
    // last channel and skip its stores. No atomics: deterministic.
    // Why blocks this size, and separate tile methods: on the CPU accelerator the kernel is the .NET method itself, and
    // every ArrayView access runs ILGPU's checks (Trace.Assert of the range, and of the buffer's accelerator type). Their
    // failure calls sit in the loop, so the JIT keeps the accumulators in stack slots (no x64 SysV XMM register survives
    // a call) and each access costs ~15 instructions: what pays is many multiply-adds per access. In one large method
    // the JIT also runs out of inlining budget and leaves the accelerator-type getter as a real call.

    const int V4Block = 8;

    static int XMax(int a, int b) => a > b ? a : b;

    /// <summary>o[i], o[i + step], o[i + 2 step], o[i + 3 step] = a, b, c, d.</summary>
    static void Store4(ArrayView<float> o, int i, int step, float a, float b, float c, float d)
    {
        o[i] = a; o[i + step] = b; o[i + 2 * step] = c; o[i + 3 * step] = d;
    }

    /// <summary>The first <paramref name="count"/> (up to 4) of Store4's values.</summary>
    static void StoreSome(ArrayView<float> o, int count, int i, int step, float a, float b, float c, float d)
    {
        if (count >= 4) Store4(o, i, step, a, b, c, d);
        else if (count > 0)
        {
            o[i] = a;
            if (count > 1) o[i + step] = b;
            if (count > 2) o[i + 2 * step] = c;
        }
    }

    static void V4ForwardKernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvGeometry g, int hasBias)
    {
        int cob = (g.Cout + V4Block - 1) / V4Block, units = g.N * cob * g.Ho, stride = Grid.DimX * Group.DimX;
        int owLo = ColumnLo(g, 0), owHi = ColumnHi(g, g.R - 1);   // columns whose every tap lies inside
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int oh = u % g.Ho, t = u / g.Ho, co0 = (t % cob) * V4Block, n = t / cob;
            int ow = 0;
            while (ow < g.Wo)
            {
                if (ow >= owLo && ow + 3 <= owHi)
                {
                    V4ForwardTile(x, w, bias, y, g, hasBias, n, co0, oh, ow);
                    ow += 4;
                }
                else
                {
                    V4ForwardColumn(x, w, bias, y, g, hasBias, n, co0, oh, ow);
                    ow++;
                }
            }
        }
    }

    /// <summary>y[n, co0.., oh, ow..ow+3], every tap inside the image along the row.</summary>
    static void V4ForwardTile(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvGeometry g, int hasBias,
        int n, int co0, int oh, int ow)
    {
        int cin = g.Cin, r = g.R, s = g.S, rr = r * r, plane = g.H * g.W, wco = cin * rr, last = g.Cout - 1;
        int w0 = co0 * wco, w1 = XMin(co0 + 1, last) * wco, w2 = XMin(co0 + 2, last) * wco, w3 = XMin(co0 + 3, last) * wco;
        int w4 = XMin(co0 + 4, last) * wco, w5 = XMin(co0 + 5, last) * wco, w6 = XMin(co0 + 6, last) * wco, w7 = XMin(co0 + 7, last) * wco;
        int ihb = oh * s - g.P, khLo = XMax(0, -ihb), khHi = XMin(r - 1, g.H - 1 - ihb), s2 = 2 * s, s3 = 3 * s;
        int xc = (n * cin * g.H + ihb) * g.W + ow * s - g.P;
        float a00 = 0, a01 = 0, a02 = 0, a03 = 0;
        float a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        float a20 = 0, a21 = 0, a22 = 0, a23 = 0;
        float a30 = 0, a31 = 0, a32 = 0, a33 = 0;
        float a40 = 0, a41 = 0, a42 = 0, a43 = 0;
        float a50 = 0, a51 = 0, a52 = 0, a53 = 0;
        float a60 = 0, a61 = 0, a62 = 0, a63 = 0;
        float a70 = 0, a71 = 0, a72 = 0, a73 = 0;
        for (int ci = 0; ci < cin; ci++)
            for (int kh = khLo; kh <= khHi; kh++)
            {
                int xr = xc + ci * plane + kh * g.W, wr = ci * rr + kh * r;
                for (int kw = 0; kw < r; kw++)
                {
                    int xi = xr + kw, wi = wr + kw;
                    float x0 = x[xi], x1 = x[xi + s], x2 = x[xi + s2], x3 = x[xi + s3];
                    float v0 = w[w0 + wi], v1 = w[w1 + wi], v2 = w[w2 + wi], v3 = w[w3 + wi];
                    float v4 = w[w4 + wi], v5 = w[w5 + wi], v6 = w[w6 + wi], v7 = w[w7 + wi];
                    a00 += v0 * x0; a01 += v0 * x1; a02 += v0 * x2; a03 += v0 * x3;
                    a10 += v1 * x0; a11 += v1 * x1; a12 += v1 * x2; a13 += v1 * x3;
                    a20 += v2 * x0; a21 += v2 * x1; a22 += v2 * x2; a23 += v2 * x3;
                    a30 += v3 * x0; a31 += v3 * x1; a32 += v3 * x2; a33 += v3 * x3;
                    a40 += v4 * x0; a41 += v4 * x1; a42 += v4 * x2; a43 += v4 * x3;
                    a50 += v5 * x0; a51 += v5 * x1; a52 += v5 * x2; a53 += v5 * x3;
                    a60 += v6 * x0; a61 += v6 * x1; a62 += v6 * x2; a63 += v6 * x3;
                    a70 += v7 * x0; a71 += v7 * x1; a72 += v7 * x2; a73 += v7 * x3;
                }
            }
        int plo = g.Ho * g.Wo, yi = ((n * g.Cout + co0) * g.Ho + oh) * g.Wo + ow, count = g.Cout - co0;
        float b0 = count > 0 && hasBias != 0 ? bias[co0 + 0] : 0f;
        float b1 = count > 1 && hasBias != 0 ? bias[co0 + 1] : 0f;
        float b2 = count > 2 && hasBias != 0 ? bias[co0 + 2] : 0f;
        float b3 = count > 3 && hasBias != 0 ? bias[co0 + 3] : 0f;
        float b4 = count > 4 && hasBias != 0 ? bias[co0 + 4] : 0f;
        float b5 = count > 5 && hasBias != 0 ? bias[co0 + 5] : 0f;
        float b6 = count > 6 && hasBias != 0 ? bias[co0 + 6] : 0f;
        float b7 = count > 7 && hasBias != 0 ? bias[co0 + 7] : 0f;
        Store4(y, yi, 1, a00 + b0, a01 + b0, a02 + b0, a03 + b0);
        if (count > 1) Store4(y, yi + 1 * plo, 1, a10 + b1, a11 + b1, a12 + b1, a13 + b1);
        if (count > 2) Store4(y, yi + 2 * plo, 1, a20 + b2, a21 + b2, a22 + b2, a23 + b2);
        if (count > 3) Store4(y, yi + 3 * plo, 1, a30 + b3, a31 + b3, a32 + b3, a33 + b3);
        if (count > 4) Store4(y, yi + 4 * plo, 1, a40 + b4, a41 + b4, a42 + b4, a43 + b4);
        if (count > 5) Store4(y, yi + 5 * plo, 1, a50 + b5, a51 + b5, a52 + b5, a53 + b5);
        if (count > 6) Store4(y, yi + 6 * plo, 1, a60 + b6, a61 + b6, a62 + b6, a63 + b6);
        if (count > 7) Store4(y, yi + 7 * plo, 1, a70 + b7, a71 + b7, a72 + b7, a73 + b7);
    }

    /// <summary>y[n, co0.., oh, ow], only the taps inside the image.</summary>
    static void V4ForwardColumn(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, ConvGeometry g, int hasBias,
        int n, int co0, int oh, int ow)
    {
        int cin = g.Cin, r = g.R, rr = r * r, plane = g.H * g.W, wco = cin * rr, last = g.Cout - 1;
        int w0 = co0 * wco, w1 = XMin(co0 + 1, last) * wco, w2 = XMin(co0 + 2, last) * wco, w3 = XMin(co0 + 3, last) * wco;
        int w4 = XMin(co0 + 4, last) * wco, w5 = XMin(co0 + 5, last) * wco, w6 = XMin(co0 + 6, last) * wco, w7 = XMin(co0 + 7, last) * wco;
        int ihb = oh * g.S - g.P, khLo = XMax(0, -ihb), khHi = XMin(r - 1, g.H - 1 - ihb);
        int iwb = ow * g.S - g.P, kwLo = XMax(0, -iwb), kwHi = XMin(r - 1, g.W - 1 - iwb);
        int xc = (n * cin * g.H + ihb) * g.W + iwb;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        for (int ci = 0; ci < cin; ci++)
            for (int kh = khLo; kh <= khHi; kh++)
            {
                int xr = xc + ci * plane + kh * g.W, wr = ci * rr + kh * r;
                for (int kw = kwLo; kw <= kwHi; kw++)
                {
                    float xv = x[xr + kw];
                    int wi = wr + kw;
                    a0 += w[w0 + wi] * xv; a1 += w[w1 + wi] * xv; a2 += w[w2 + wi] * xv; a3 += w[w3 + wi] * xv;
                    a4 += w[w4 + wi] * xv; a5 += w[w5 + wi] * xv; a6 += w[w6 + wi] * xv; a7 += w[w7 + wi] * xv;
                }
            }
        int plo = g.Ho * g.Wo, yi = ((n * g.Cout + co0) * g.Ho + oh) * g.Wo + ow, count = g.Cout - co0;
        float b0 = count > 0 && hasBias != 0 ? bias[co0 + 0] : 0f;
        float b1 = count > 1 && hasBias != 0 ? bias[co0 + 1] : 0f;
        float b2 = count > 2 && hasBias != 0 ? bias[co0 + 2] : 0f;
        float b3 = count > 3 && hasBias != 0 ? bias[co0 + 3] : 0f;
        float b4 = count > 4 && hasBias != 0 ? bias[co0 + 4] : 0f;
        float b5 = count > 5 && hasBias != 0 ? bias[co0 + 5] : 0f;
        float b6 = count > 6 && hasBias != 0 ? bias[co0 + 6] : 0f;
        float b7 = count > 7 && hasBias != 0 ? bias[co0 + 7] : 0f;
        StoreSome(y, count - 0, yi + 0 * plo, plo, a0 + b0, a1 + b1, a2 + b2, a3 + b3);
        StoreSome(y, count - 4, yi + 4 * plo, plo, a4 + b4, a5 + b5, a6 + b6, a7 + b7);
    }

    // Input grad: input row ih meets output row oh = (ih + P - kh) / S at the taps kh with ih + P - kh = oh S, 0 <= oh < Ho.
    // Its columns iw = res + S j (res < S) meet, at the taps kw = kw0 + S m (kw0 = (res + P) % S), the output columns
    // ow = owb + j - m (owb = (res + P) / S): consecutive j read consecutive dy.

    static void V4InputGradKernel(ArrayView<float> w, ArrayView<float> dy, ArrayView<float> dx, ConvGeometry g)
    {
        int s = g.S, r = g.R, cib = (g.Cin + V4Block - 1) / V4Block, units = g.N * cib * g.H, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int ih = u % g.H, t = u / g.H, ci0 = (t % cib) * V4Block, n = t / cib;
            int kh0 = (ih + g.P) % s, khHi = XMin(r - 1, ih + g.P), khLo = XMax(0, ih + g.P - s * (g.Ho - 1));
            while (kh0 < khLo) kh0 += s;
            for (int res = 0; res < s && res < g.W; res++)
            {
                int jn = (g.W - res + s - 1) / s, kw0 = (res + g.P) % s, owb = (res + g.P) / s;
                // Interior j: ow inside [0, Wo) at every tap (the last tap has the smallest ow). None without taps.
                int jLo = jn, jHi = -1;
                if (kw0 <= r - 1) { jLo = XMax(0, (r - 1 - kw0) / s - owb); jHi = XMin(jn - 1, g.Wo - 1 - owb); }
                int j = 0;
                while (j < jn)
                {
                    if (j >= jLo && j + 3 <= jHi)
                    {
                        V4InputGradTile(w, dy, dx, g, n, ci0, ih, kh0, khHi, res + s * j, kw0, owb + j);
                        j += 4;
                    }
                    else
                    {
                        V4InputGradColumn(w, dy, dx, g, n, ci0, ih, kh0, khHi, res + s * j, kw0, owb + j);
                        j++;
                    }
                }
            }
        }
    }

    /// <summary>dx[n, ci0.., ih, iw + S q] for q &lt; 4; ow: the output column of tap kw0 at q = 0, every tap's inside.</summary>
    static void V4InputGradTile(ArrayView<float> w, ArrayView<float> dy, ArrayView<float> dx, ConvGeometry g,
        int n, int ci0, int ih, int kh0, int khHi, int iw, int kw0, int ow)
    {
        int cin = g.Cin, r = g.R, s = g.S, rr = r * r, wco = cin * rr, oplane = g.Ho * g.Wo, last = cin - 1;
        int w0 = ci0 * rr, w1 = XMin(ci0 + 1, last) * rr, w2 = XMin(ci0 + 2, last) * rr, w3 = XMin(ci0 + 3, last) * rr;
        int w4 = XMin(ci0 + 4, last) * rr, w5 = XMin(ci0 + 5, last) * rr, w6 = XMin(ci0 + 6, last) * rr, w7 = XMin(ci0 + 7, last) * rr;
        int dn = n * g.Cout * oplane + ow;
        float a00 = 0, a01 = 0, a02 = 0, a03 = 0;
        float a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        float a20 = 0, a21 = 0, a22 = 0, a23 = 0;
        float a30 = 0, a31 = 0, a32 = 0, a33 = 0;
        float a40 = 0, a41 = 0, a42 = 0, a43 = 0;
        float a50 = 0, a51 = 0, a52 = 0, a53 = 0;
        float a60 = 0, a61 = 0, a62 = 0, a63 = 0;
        float a70 = 0, a71 = 0, a72 = 0, a73 = 0;
        for (int co = 0; co < g.Cout; co++)
            for (int kh = kh0; kh <= khHi; kh += s)
            {
                int dr = dn + co * oplane + ((ih + g.P - kh) / s) * g.Wo, wr = co * wco + kh * r;
                for (int kw = kw0; kw < r; kw += s)
                {
                    int di = dr - (kw - kw0) / s, wi = wr + kw;
                    float d0 = dy[di], d1 = dy[di + 1], d2 = dy[di + 2], d3 = dy[di + 3];
                    float v0 = w[w0 + wi], v1 = w[w1 + wi], v2 = w[w2 + wi], v3 = w[w3 + wi];
                    float v4 = w[w4 + wi], v5 = w[w5 + wi], v6 = w[w6 + wi], v7 = w[w7 + wi];
                    a00 += v0 * d0; a01 += v0 * d1; a02 += v0 * d2; a03 += v0 * d3;
                    a10 += v1 * d0; a11 += v1 * d1; a12 += v1 * d2; a13 += v1 * d3;
                    a20 += v2 * d0; a21 += v2 * d1; a22 += v2 * d2; a23 += v2 * d3;
                    a30 += v3 * d0; a31 += v3 * d1; a32 += v3 * d2; a33 += v3 * d3;
                    a40 += v4 * d0; a41 += v4 * d1; a42 += v4 * d2; a43 += v4 * d3;
                    a50 += v5 * d0; a51 += v5 * d1; a52 += v5 * d2; a53 += v5 * d3;
                    a60 += v6 * d0; a61 += v6 * d1; a62 += v6 * d2; a63 += v6 * d3;
                    a70 += v7 * d0; a71 += v7 * d1; a72 += v7 * d2; a73 += v7 * d3;
                }
            }
        int plane = g.H * g.W, xi = ((n * cin + ci0) * g.H + ih) * g.W + iw, count = cin - ci0;
        Store4(dx, xi, s, a00, a01, a02, a03);
        if (count > 1) Store4(dx, xi + 1 * plane, s, a10, a11, a12, a13);
        if (count > 2) Store4(dx, xi + 2 * plane, s, a20, a21, a22, a23);
        if (count > 3) Store4(dx, xi + 3 * plane, s, a30, a31, a32, a33);
        if (count > 4) Store4(dx, xi + 4 * plane, s, a40, a41, a42, a43);
        if (count > 5) Store4(dx, xi + 5 * plane, s, a50, a51, a52, a53);
        if (count > 6) Store4(dx, xi + 6 * plane, s, a60, a61, a62, a63);
        if (count > 7) Store4(dx, xi + 7 * plane, s, a70, a71, a72, a73);
    }

    /// <summary>dx[n, ci0.., ih, iw], only the taps whose output column lies inside.</summary>
    static void V4InputGradColumn(ArrayView<float> w, ArrayView<float> dy, ArrayView<float> dx, ConvGeometry g,
        int n, int ci0, int ih, int kh0, int khHi, int iw, int kw0, int ow)
    {
        int cin = g.Cin, r = g.R, s = g.S, rr = r * r, wco = cin * rr, oplane = g.Ho * g.Wo, last = cin - 1;
        int w0 = ci0 * rr, w1 = XMin(ci0 + 1, last) * rr, w2 = XMin(ci0 + 2, last) * rr, w3 = XMin(ci0 + 3, last) * rr;
        int w4 = XMin(ci0 + 4, last) * rr, w5 = XMin(ci0 + 5, last) * rr, w6 = XMin(ci0 + 6, last) * rr, w7 = XMin(ci0 + 7, last) * rr;
        // Taps kw = kw0 + S m meet column ow - m: keep 0 <= ow - m < Wo.
        int kwLo = kw0 + s * XMax(0, ow - (g.Wo - 1)), kwHi = XMin(r - 1, kw0 + s * ow);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        for (int co = 0; co < g.Cout; co++)
            for (int kh = kh0; kh <= khHi; kh += s)
            {
                int dr = (n * g.Cout + co) * oplane + ((ih + g.P - kh) / s) * g.Wo + ow, wr = co * wco + kh * r;
                for (int kw = kwLo; kw <= kwHi; kw += s)
                {
                    float dv = dy[dr - (kw - kw0) / s];
                    int wi = wr + kw;
                    a0 += w[w0 + wi] * dv; a1 += w[w1 + wi] * dv; a2 += w[w2 + wi] * dv; a3 += w[w3 + wi] * dv;
                    a4 += w[w4 + wi] * dv; a5 += w[w5 + wi] * dv; a6 += w[w6 + wi] * dv; a7 += w[w7 + wi] * dv;
                }
            }
        int plane = g.H * g.W, xi = ((n * cin + ci0) * g.H + ih) * g.W + iw, count = cin - ci0;
        StoreSome(dx, count - 0, xi + 0 * plane, plane, a0, a1, a2, a3);
        StoreSome(dx, count - 4, xi + 4 * plane, plane, a4, a5, a6, a7);
    }

    static void V4WeightGradKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw, ConvGeometry g)
    {
        int cib = (g.Cin + 3) / 4, rr = g.R * g.R, units = ((g.Cout + V4Block - 1) / V4Block) * cib * rr, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int tap = u % rr, t = u / rr;
            V4WeightGradTile(x, dy, dw, g, (t / cib) * V4Block, (t % cib) * 4, tap / g.R, tap % g.R);
        }
    }

    /// <summary>dw[co0.., ci0..ci0+3, kh, kw]: a sum over the batch and the output positions whose tap lies inside.</summary>
    static void V4WeightGradTile(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw, ConvGeometry g, int co0, int ci0, int kh, int kw)
    {
        int cin = g.Cin, cout = g.Cout, s = g.S, p = g.P, plane = g.H * g.W, oplane = g.Ho * g.Wo;
        int ohLo = p - kh <= 0 ? 0 : (p - kh + s - 1) / s, ohHi = g.H - 1 + p - kh < 0 ? -1 : XMin(g.Ho - 1, (g.H - 1 + p - kh) / s);
        int lo = ColumnLo(g, kw), hi = ColumnHi(g, kw);
        int x1 = (XMin(ci0 + 1, cin - 1) - ci0) * plane, x2 = (XMin(ci0 + 2, cin - 1) - ci0) * plane, x3 = (XMin(ci0 + 3, cin - 1) - ci0) * plane;
        int d1 = (XMin(co0 + 1, cout - 1) - co0) * oplane, d2 = (XMin(co0 + 2, cout - 1) - co0) * oplane, d3 = (XMin(co0 + 3, cout - 1) - co0) * oplane, d4 = (XMin(co0 + 4, cout - 1) - co0) * oplane;
        int d5 = (XMin(co0 + 5, cout - 1) - co0) * oplane, d6 = (XMin(co0 + 6, cout - 1) - co0) * oplane, d7 = (XMin(co0 + 7, cout - 1) - co0) * oplane;
        float a00 = 0, a01 = 0, a02 = 0, a03 = 0;
        float a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        float a20 = 0, a21 = 0, a22 = 0, a23 = 0;
        float a30 = 0, a31 = 0, a32 = 0, a33 = 0;
        float a40 = 0, a41 = 0, a42 = 0, a43 = 0;
        float a50 = 0, a51 = 0, a52 = 0, a53 = 0;
        float a60 = 0, a61 = 0, a62 = 0, a63 = 0;
        float a70 = 0, a71 = 0, a72 = 0, a73 = 0;
        for (int n = 0; n < g.N; n++)
            for (int oh = ohLo; oh <= ohHi; oh++)
            {
                int xr = ((n * cin + ci0) * g.H + oh * s - p + kh) * g.W - p + kw, dr = ((n * cout + co0) * g.Ho + oh) * g.Wo;
                for (int ow = lo; ow <= hi; ow++)
                {
                    int xi = xr + ow * s, di = dr + ow;
                    float v0 = x[xi], v1 = x[xi + x1], v2 = x[xi + x2], v3 = x[xi + x3];
                    float e0 = dy[di], e1 = dy[di + d1], e2 = dy[di + d2], e3 = dy[di + d3];
                    float e4 = dy[di + d4], e5 = dy[di + d5], e6 = dy[di + d6], e7 = dy[di + d7];
                    a00 += e0 * v0; a01 += e0 * v1; a02 += e0 * v2; a03 += e0 * v3;
                    a10 += e1 * v0; a11 += e1 * v1; a12 += e1 * v2; a13 += e1 * v3;
                    a20 += e2 * v0; a21 += e2 * v1; a22 += e2 * v2; a23 += e2 * v3;
                    a30 += e3 * v0; a31 += e3 * v1; a32 += e3 * v2; a33 += e3 * v3;
                    a40 += e4 * v0; a41 += e4 * v1; a42 += e4 * v2; a43 += e4 * v3;
                    a50 += e5 * v0; a51 += e5 * v1; a52 += e5 * v2; a53 += e5 * v3;
                    a60 += e6 * v0; a61 += e6 * v1; a62 += e6 * v2; a63 += e6 * v3;
                    a70 += e7 * v0; a71 += e7 * v1; a72 += e7 * v2; a73 += e7 * v3;
                }
            }
        // dw[co, ci, kh, kw]: rows co, columns ci (stride R R).
        int rr = g.R * g.R, row = cin * rr, di0 = (co0 * cin + ci0) * rr + kh * g.R + kw, count = cin - ci0;
        StoreSome(dw, count, di0, rr, a00, a01, a02, a03);
        if (co0 + 1 < cout) StoreSome(dw, count, di0 + 1 * row, rr, a10, a11, a12, a13);
        if (co0 + 2 < cout) StoreSome(dw, count, di0 + 2 * row, rr, a20, a21, a22, a23);
        if (co0 + 3 < cout) StoreSome(dw, count, di0 + 3 * row, rr, a30, a31, a32, a33);
        if (co0 + 4 < cout) StoreSome(dw, count, di0 + 4 * row, rr, a40, a41, a42, a43);
        if (co0 + 5 < cout) StoreSome(dw, count, di0 + 5 * row, rr, a50, a51, a52, a53);
        if (co0 + 6 < cout) StoreSome(dw, count, di0 + 6 * row, rr, a60, a61, a62, a63);
        if (co0 + 7 < cout) StoreSome(dw, count, di0 + 7 * row, rr, a70, a71, a72, a73);
    }

    static void RunV4(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o)
    {
        // A block of V4Block channels over 1 or 2 channels (the UNet's 64 -> 1 output conv, the 1 -> 64 input conv's
        // input grad) would mostly compute repeats: v3's planes are faster there.
        if ((pass == ConvPass.InputGrad ? g.Cin : g.Cout) <= V4Block / 4)
        {
            RunV3(acc, pass, g, x, w, dy, bias, hasBias, o);
            return;
        }
        RunPerPass(acc, "v4", pass, g, x, w, dy, bias, hasBias, o, V4ForwardKernel, V4InputGradKernel, V4WeightGradKernel);
    }

    /// <summary>Whether a version can run on this accelerator (the tf32 ones need TensorCore.Runs).</summary>
    public static bool Runs(Accelerator acc, ConvVersion v) => v is not (ConvVersion.V6Tf32 or ConvVersion.V7HoistedTf32) || TensorCore.Runs(acc);

    /// <summary>Whether KD_KERNELS=auto tries a version here: fp32 versions that run, less those measured hopeless on
    /// this kind of accelerator: on the CPU accelerator v2 (its shared tiles shrink to 1 x 1 in 2-thread groups: up to
    /// 5.7 s a pass at the quick fmnist shapes); on GPUs v3 (a plane per thread: 433 ms against v2's 5.8 on an H100) and
    /// v1 (6.3-7.7x v2 in all five conv cases of that run, 29-174 ms a run: trying it cost the most tuning time).</summary>
    public static bool Tunable(Accelerator acc, ConvVersion v)
        => v is not (ConvVersion.V6Tf32 or ConvVersion.V7HoistedTf32)
           && (Launch.IsCpu(acc) ? v != ConvVersion.V2Tiled : v is not (ConvVersion.V1Direct or ConvVersion.V3Planes));

    /// <summary>The side of a thread's register block for the register-tiled versions (v5, v8-v11, v14, v15; their tiles on a GPU
    /// are 16 times that), 0 for the others.</summary>
    public static int RegisterBlockRows(ConvVersion v) => v switch
    {
        ConvVersion.V5RegisterTiles or ConvVersion.V8Hoisted or ConvVersion.V11Vector4 or ConvVersion.V15Pipelined4 => BlockRows,
        ConvVersion.V9Hoisted8 or ConvVersion.V10Vector or ConvVersion.V14Pipelined => Block8Rows,
        _ => 0,
    };

    /// <summary>v13 (Winograd F(4x4, 3x3)) where it covers the geometry, on every accelerator; elsewhere v4 on the CPU
    /// accelerator and v14 (pipelined register tiles) on GPUs. Measured on 2 CPU cores: kd sample took 47-51 s with v13
    /// and GEMM v9 against 71 s with v4 and GEMM v3; v4 itself runs 1.7-5x v3's rate per pass. On an H100
    /// (bench/results/h100-2026-11-26b): v13 with pipelined GEMMs ran 2.8-5.9x v14 in every conv case (a forward pass
    /// 0.33-0.46 ms at the reference shapes); v14 was the fastest direct version in 6 of the 10, v11 in the other 4 by
    /// 12-26%. At fmnist's 1x1 convolutions (bench/results/h100-2026-11-27b, call 2) v14 was the fastest fp32 version in 3 of 5
    /// cases, 2% behind v15 in a fourth, and 18% behind v11 in the forward to 64 channels; v15, though its 64 x 64
    /// tiles waste nothing there, took 0.98-1.88x v14's time.
    /// v16 (GEMMs) at 1x1 stride-1 convolutions on GPUs, where the direct versions took 1.9-4.8x cuDNN's time in the
    /// forward and input gradient: v16 0.156 ms against v14's 0.497 in the forward to 64 channels at fmnist's 28x28, 0.169
    /// against 0.389 in its input gradient (bench/results/h100-2026-11-27b, call 4; its weight gradient is v14's).
    /// v17 (v16 with its weight gradient as per-sample GEMMs summed) in their place: on an H200
    /// (bench/results/h200-2026-11-27, call 1) its weight gradients took 0.174, 0.219 and 0.136 ms at fmnist's three
    /// cases against v16's (v14's) 0.368, 0.688 and 0.277 (cuDNN 0.307, 0.432, 0.159), its other passes v16's times,
    /// and the fmnist training step 75.2 ms against 77.3 with v16 (PyTorch 75.9 in the same call).</summary>
    public static ConvVersion Choose(Accelerator acc, ConvGeometry g)
        => Winograd.Covers(g, 4) ? ConvVersion.V13Winograd4 : Launch.IsCpu(acc) ? ConvVersion.V4Blocked
         : IsPointwise(g) ? ConvVersion.V17Gemm1x1Weights : ConvVersion.V14Pipelined;

    /// <summary>The direct (implicit-GEMM) default: what runs where Winograd and v16 do not apply.</summary>
    static ConvVersion DirectDefault(Accelerator acc) => Launch.IsCpu(acc) ? ConvVersion.V4Blocked : ConvVersion.V14Pipelined;

    /// <summary>Whether a version computes this geometry itself: v12 and v13 hand what Winograd does not cover (1x1,
    /// stride 2) to the default, v16 and v17 what is not 1x1 at stride 1, so tuning skips them there.</summary>
    public static bool Covers(ConvGeometry g, ConvVersion v)
        => v is ConvVersion.V16Gemm1x1 or ConvVersion.V17Gemm1x1Weights ? IsPointwise(g) : WinogradTile(v) is not (> 0 and var tile) || Winograd.Covers(g, tile);

    /// <summary>The version that computes a pass asked of <paramref name="v"/>: v itself where it covers the geometry
    /// (Covers), else the default; where v16 is asked a weight gradient, or v17 one without the scratch its products need
    /// (ScratchLength), the direct default.</summary>
    static ConvVersion Resolve(Accelerator acc, ConvGeometry g, ConvPass pass, ConvVersion v, ArrayView<float> scratch)
    {
        if (!Covers(g, v)) v = Choose(acc, g);
        if (pass != ConvPass.WeightGrad || v is not (ConvVersion.V16Gemm1x1 or ConvVersion.V17Gemm1x1Weights)) return v;
        bool products = v == ConvVersion.V17Gemm1x1Weights && (g.N == 1 || scratch.IsValid && scratch.Length >= (long)g.N * g.Cout * g.Cin);
        return products ? v : DirectDefault(acc);
    }

    /// <summary>The side of a Winograd version's output tiles (v12: 2, v13: 4), 0 for the others.</summary>
    public static int WinogradTile(ConvVersion v) => v switch { ConvVersion.V12Winograd => 2, ConvVersion.V13Winograd4 => 4, _ => 0 };

    /// <summary>Runs one pass. Unused views (dy for forward, x for input grad, bias without one) may be any view.</summary>
    /// <remarks>v5's weight gradient splits k into S slices when <paramref name="scratch"/> holds S * Cout * Cin*R*R floats
    /// (S up to MaxSplits; WeightGradSplits says how many suit the accelerator). v12 and v13 want ScratchLength floats in every pass, and
    /// run their GEMMs through <paramref name="gemm"/> (default: Gemm.Run at GEMM's default version).</remarks>
    public static void Run(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o, ConvVersion? version = null, ArrayView<float> scratch = default,
        GemmRunner? gemm = null)
    {
        var (m, n, kk) = Dims(g, pass);
        var v = Resolve(acc, g, pass, version ?? Choose(acc, g), scratch);
        if (WinogradTile(v) is > 0 and var side)
        {
            Winograd.Run(acc, pass, g, x, w, dy, bias, hasBias, o, scratch, Winograd.Slices(acc, g, side), side, gemm);
            return;
        }
        if (v is ConvVersion.V16Gemm1x1 or ConvVersion.V17Gemm1x1Weights)
        {
            RunPointwise(acc, pass, g, x, w, dy, bias, hasBias, o, gemm ?? Gemm.At(acc), scratch);
            return;
        }
        if (v == ConvVersion.V3Planes)
        {
            RunV3(acc, pass, g, x, w, dy, bias, hasBias, o);
            return;
        }
        if (v == ConvVersion.V4Blocked)
        {
            RunV4(acc, pass, g, x, w, dy, bias, hasBias, o);
            return;
        }
        if (v is ConvVersion.V6Tf32 or ConvVersion.V7HoistedTf32)
        {
            if (!Runs(acc, v)) throw TensorCore.Refusal(acc, $"conv2d v{(int)v}");
            var k = v == ConvVersion.V6Tf32
                ? KernelCache.Get(acc, "conv2d.v6", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ConvGeometry, int, int, int, int, int, int, ArrayView<float>>(V6Kernel))
                : KernelCache.Get(acc, "conv2d.v7", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ConvGeometry, int, int, int, int, int, int, ArrayView<float>>(V7Kernel));
            int splits = SplitsIn(scratch, pass, m, n);
            long items = SplitTiles.Create(m, n, kk, TensorCore.Tile, splits, TensorCore.StageK).Count;
            int grid = (int)Math.Min(items, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 8L);
            k(new KernelConfig(Math.Max(1, grid), TensorCore.Threads), x, w, dy, bias, o, g, (int)pass, hasBias ? 1 : 0, m, n, kk, splits,
                splits > 1 ? scratch : o);
            SumSplits(acc, scratch, o, splits, m, n);
            return;
        }
        if (RegisterBlockRows(v) > 0)
        {
            var (key, entry) = v switch
            {
                ConvVersion.V5RegisterTiles => ("conv2d.v5", (RegisterTilesEntry)V5Kernel),
                ConvVersion.V8Hoisted => ("conv2d.v8", V8Kernel),
                ConvVersion.V9Hoisted8 => ("conv2d.v9", V9Kernel),
                ConvVersion.V10Vector => ("conv2d.v10", V10Kernel),
                ConvVersion.V11Vector4 => ("conv2d.v11", V11Kernel),
                ConvVersion.V14Pipelined => ("conv2d.v14", V14Kernel),
                _ => ("conv2d.v15", V15Kernel),
            };
            var k = KernelCache.Get(acc, key, a => a.LoadStreamKernel(entry, LaunchBoundsAttribute.Of(entry, a.MaxNumThreadsPerGroup)));
            int tdim = Launch.SquareSide(acc, MaxTile);
            int rows = RegisterBlockRows(v), tile = rows * tdim;
            int splits = SplitsIn(scratch, pass, m, n);
            long items = SplitTiles.Create(m, n, kk, tile, splits, BlockK).Count;
            int grid = (int)Math.Min(items, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * (rows == BlockRows ? 16L : 8L));
            k(new KernelConfig(Math.Max(1, grid), tdim * tdim), x, w, dy, bias, o, g, (int)pass, hasBias ? 1 : 0, m, n, kk, tdim, splits,
                splits > 1 ? scratch : o);
            SumSplits(acc, scratch, o, splits, m, n);
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
            int tile = Launch.SquareSide(acc, MaxTile);
            long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
            int grid = (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 16L);
            k(new KernelConfig(Math.Max(1, grid), tile * tile), x, w, dy, bias, o, g, (int)pass, hasBias ? 1 : 0, m, n, kk, tile);
        }
    }

    /// <summary>The weight gradient splits k into as many slices as the caller's scratch holds (see WeightGradSplits).</summary>
    static int SplitsIn(ArrayView<float> scratch, ConvPass pass, int m, int n)
        => pass == ConvPass.WeightGrad && scratch.IsValid ? (int)Math.Clamp(scratch.Length / ((long)m * n), 1, MaxSplits) : 1;

    static void SumSplits(Accelerator acc, ArrayView<float> scratch, ArrayView<float> o, int splits, int m, int n)
    {
        if (splits <= 1) return;
        var sum = KernelCache.Get(acc, "conv2d.split_sum", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(SplitSumKernel));
        sum(Launch.GridStride(acc, (long)m * n), scratch, o, splits, m * n);
    }

    static void RunV3(Accelerator acc, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o)
        => RunPerPass(acc, "v3", pass, g, x, w, dy, bias, hasBias, o, V3ForwardKernel, V3InputGradKernel, V3WeightGradKernel);

    /// <summary>Versions with one kernel per pass (v3, v4), each a grid-stride loop over the pass's outputs.</summary>
    static void RunPerPass(Accelerator acc, string tag, ConvPass pass, ConvGeometry g, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dy,
        ArrayView<float> bias, bool hasBias, ArrayView<float> o,
        Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvGeometry, int> forward,
        Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvGeometry> inputGrad,
        Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvGeometry> weightGrad)
    {
        if (pass == ConvPass.Forward)
        {
            var k = KernelCache.Get(acc, $"conv2d.{tag}.forward", a => a.LoadStreamKernel(forward));
            k(Launch.GridStride(acc, (long)g.N * g.Cout * g.Ho * g.Wo), x, w, bias, o, g, hasBias ? 1 : 0);
        }
        else if (pass == ConvPass.InputGrad)
        {
            var k = KernelCache.Get(acc, $"conv2d.{tag}.input_grad", a => a.LoadStreamKernel(inputGrad));
            k(Launch.GridStride(acc, (long)g.N * g.Cin * g.H * g.W), w, dy, o, g);
        }
        else
        {
            var k = KernelCache.Get(acc, $"conv2d.{tag}.weight_grad", a => a.LoadStreamKernel(weightGrad));
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
