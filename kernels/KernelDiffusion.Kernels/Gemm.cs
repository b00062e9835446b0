using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>C[b] = Alpha * op(A[b]) op(B[b]) + Beta * C[b], row-major. op(A) is M x K (A stored K x M when
/// TransA), op(B) is K x N (B stored N x K when TransB). A batch stride of 0 shares one matrix across the batch.
/// Beta = 0 never reads C, so C may hold garbage.</summary>
public struct GemmShape
{
    public int Batch, M, N, K, TransA, TransB;
    public int StrideA, StrideB, StrideC;
    public float Alpha, Beta;

    /// <summary>Two-level batches (attention: batch b = sample n * heads + head h, where a sample's heads are
    /// StrideX apart and samples OuterX apart; one head is Split 1: matrix b at b * OuterX). 0: one level, matrix b at
    /// b * StrideX.</summary>
    public int Split, OuterA, OuterB, OuterC;

    public readonly int Base(int b, int stride, int outer) => Split > 0 ? (b / Split) * outer + (b % Split) * stride : b * stride;
    public readonly int IndexA(int b, int i, int k) => Base(b, StrideA, OuterA) + (TransA == 0 ? i * K + k : k * M + i);
    public readonly int IndexB(int b, int k, int j) => Base(b, StrideB, OuterB) + (TransB == 0 ? k * N + j : j * K + k);
    public readonly int IndexC(int b, int i, int j) => Base(b, StrideC, OuterC) + i * N + j;

    /// <summary>Work items when each matrix of C is cut in tile x tile blocks (the blocked kernels' grid-stride loops).</summary>
    public readonly int Tiles(int tile) => Batch * ((M + tile - 1) / tile) * ((N + tile - 1) / tile);

    /// <summary>Work item w of Tiles(tile): its matrix, and its block's first row and column.</summary>
    public readonly (int Batch, int M0, int N0) TileAt(int w, int tile)
    {
        int tilesN = (N + tile - 1) / tile, perBatch = ((M + tile - 1) / tile) * tilesN, bi = w / perBatch, tr = w - bi * perBatch;
        return (bi, (tr / tilesN) * tile, (tr % tilesN) * tile);
    }
}

/// <summary>A thread's register block of accumulators, for kernel bodies generic over the block (Block4: conv v5 and v8;
/// Block8: GEMM v6, conv v9; Block8Runs: GEMM v7, conv v10; Block4Runs: GEMM v8, conv v11): Rows x Rows outputs of a
/// tile whose k-major shared rows are tile wide.</summary>
public interface IRegisterBlock<TSelf> where TSelf : struct, IRegisterBlock<TSelf>
{
    int Rows { get; }
    /// <summary>Where the thread's row (or column) i lies in the tile, for thread coordinate t of a side of tdim.</summary>
    int Offset(int i, int t, int tdim);
    /// <summary>This block after one step of k, whose A and B rows start at kRow in the shared tiles.</summary>
    TSelf After(ArrayView<float> at, ArrayView<float> bt, int kRow, int ty, int tx, int tdim);
    float Get(int i, int j);
}

/// <summary>A 16-byte-run register block whose whole stage of k is read at constant offsets (GEMM v12 and v13, in groups of
/// exactly 16 x 16 threads): the offsets of a stage's steps are compile-time constants, so ptxas folds them into the
/// shared loads' immediates instead of computing each address (v10 and v11 take the group's side at run time).</summary>
public interface IStagedBlock<TSelf> : IRegisterBlock<TSelf> where TSelf : struct, IStagedBlock<TSelf>
{
    /// <summary>Values of k in a stage: a stage of either operand is 1024 floats (Rows x 16 rows by StageK), one chunk
    /// of 4 per thread.</summary>
    int StageK { get; }

    /// <summary>How many stages ahead each thread's global loads run: 1 (the next stage's, as v10 and v11) or 2 (the
    /// one after it, held in registers for a stage longer).</summary>
    int StagesAhead { get; }

    /// <summary>This block after a stage of StageK values of k. <paramref name="a"/> and <paramref name="b"/> start at
    /// the thread's first run in the stage's first k row; k rows are <paramref name="pitch"/> Float4s apart: the tile's
    /// Rows x 4 (v12, v13), or one more (v14, v15, whose padding spreads a k-fastest operand's stores over the banks).</summary>
    TSelf AfterStage(ArrayView<Float4> a, ArrayView<Float4> b, int pitch);
}

/// <summary>The 4 x 4 accumulators of a register-blocked tile (GEMM v4, conv v5 and v8), as fields of a value type: ILGPU
/// 1.5.3 keeps them in registers (the PTX has no .local), where an array would live in local memory.</summary>
public struct Block4 : IRegisterBlock<Block4>
{
    public readonly int Rows => 4;
    public readonly int Offset(int i, int t, int tdim) => t + i * tdim;
    public readonly Block4 After(ArrayView<float> at, ArrayView<float> bt, int kRow, int ty, int tx, int tdim) => Step(this, at, bt, kRow + ty, kRow + tx, tdim);

    public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

    /// <summary>One step of k: rows ar, ar + step, ... of the k-major A tile times columns br, br + step, ... of the
    /// B tile, 8 shared-memory reads for 16 multiply-adds.</summary>
    public static Block4 Step(Block4 c, ArrayView<float> at, ArrayView<float> bt, int ar, int br, int step)
        => Fma(c, at[ar], at[ar + step], at[ar + 2 * step], at[ar + 3 * step], bt[br], bt[br + step], bt[br + 2 * step], bt[br + 3 * step]);

    /// <summary>c += a b^T for a column a and a row b of four values each: 16 multiply-adds on registers.</summary>
    public static Block4 Fma(Block4 c, float a0, float a1, float a2, float a3, float b0, float b1, float b2, float b3)
    {
        c.C00 += a0 * b0; c.C01 += a0 * b1; c.C02 += a0 * b2; c.C03 += a0 * b3;
        c.C10 += a1 * b0; c.C11 += a1 * b1; c.C12 += a1 * b2; c.C13 += a1 * b3;
        c.C20 += a2 * b0; c.C21 += a2 * b1; c.C22 += a2 * b2; c.C23 += a2 * b3;
        c.C30 += a3 * b0; c.C31 += a3 * b1; c.C32 += a3 * b2; c.C33 += a3 * b3;
        return c;
    }

    /// <summary>c += a b^T for runs of four (a column a, a row b), as two Float4s: 16 multiply-adds.</summary>
    public static Block4 Fma(Block4 c, Float4 a, Float4 b) => Fma(c, a.X, a.Y, a.Z, a.W, b.X, b.Y, b.Z, b.W);

    /// <summary>Accumulator (i, j): a switch, not an index, so the fields stay in registers.</summary>
    public readonly float Get(int i, int j) => (i * 4 + j) switch
    {
        0 => C00,
        1 => C01,
        2 => C02,
        3 => C03,
        4 => C10,
        5 => C11,
        6 => C12,
        7 => C13,
        8 => C20,
        9 => C21,
        10 => C22,
        11 => C23,
        12 => C30,
        13 => C31,
        14 => C32,
        _ => C33,
    };
}

/// <summary>The 8 x 8 accumulators of GEMM v6 and conv v9: four Block4 quadrants (rows 0-3 and 4-7 by columns 0-3 and 4-7).</summary>
public struct Block8 : IRegisterBlock<Block8>
{
    public Block4 Q00, Q01, Q10, Q11;

    public readonly int Rows => 8;
    public readonly int Offset(int i, int t, int tdim) => t + i * tdim;
    public readonly Block8 After(ArrayView<float> at, ArrayView<float> bt, int kRow, int ty, int tx, int tdim) => Step(this, at, bt, kRow + ty, kRow + tx, tdim);

    /// <summary>One step of k: rows ar, ar + step, ..., ar + 7 step of the k-major A tile times columns br, ..., br + 7 step
    /// of the B tile, 16 shared-memory reads for 64 multiply-adds (Block4: 8 for 16).</summary>
    public static Block8 Step(Block8 c, ArrayView<float> at, ArrayView<float> bt, int ar, int br, int step)
    {
        float a0 = at[ar], a1 = at[ar + step], a2 = at[ar + 2 * step], a3 = at[ar + 3 * step];
        float a4 = at[ar + 4 * step], a5 = at[ar + 5 * step], a6 = at[ar + 6 * step], a7 = at[ar + 7 * step];
        float b0 = bt[br], b1 = bt[br + step], b2 = bt[br + 2 * step], b3 = bt[br + 3 * step];
        float b4 = bt[br + 4 * step], b5 = bt[br + 5 * step], b6 = bt[br + 6 * step], b7 = bt[br + 7 * step];
        c.Q00 = Block4.Fma(c.Q00, a0, a1, a2, a3, b0, b1, b2, b3);
        c.Q01 = Block4.Fma(c.Q01, a0, a1, a2, a3, b4, b5, b6, b7);
        c.Q10 = Block4.Fma(c.Q10, a4, a5, a6, a7, b0, b1, b2, b3);
        c.Q11 = Block4.Fma(c.Q11, a4, a5, a6, a7, b4, b5, b6, b7);
        return c;
    }

    /// <summary>One step of k from 16-byte shared loads: rows a0 (4 of them) and a1 (4 more) times columns b0 and b1.</summary>
    public static Block8 Step(Block8 c, Float4 a0, Float4 a1, Float4 b0, Float4 b1)
    {
        c.Q00 = Block4.Fma(c.Q00, a0, b0);
        c.Q01 = Block4.Fma(c.Q01, a0, b1);
        c.Q10 = Block4.Fma(c.Q10, a1, b0);
        c.Q11 = Block4.Fma(c.Q11, a1, b1);
        return c;
    }

    /// <summary>Accumulator (i, j), by quadrant.</summary>
    public readonly float Get(int i, int j) => i < 4
        ? (j < 4 ? Q00.Get(i, j) : Q01.Get(i, j - 4))
        : (j < 4 ? Q10.Get(i - 4, j) : Q11.Get(i - 4, j - 4));
}

/// <summary>A 4 x 4 block read from shared memory 16 bytes at a time (GEMM v8, conv v11): the thread's rows are 4 t..4 t + 3
/// and its columns likewise, so a step of k is two Float4 loads (LDS.128) for 16 FMAs, where Block4 has 8 scalar loads.
/// The tiles must start 16-byte aligned (allocate them as Float4).</summary>
public struct Block4Runs : IStagedBlock<Block4Runs>
{
    Block4 c;

    /// <summary>v13's stages are 16 deep (a 64-wide tile's stage of 1024 floats): twice v11's loads in flight per
    /// thread, for the GEMMs whose K is small and whose B streams from memory (Winograd's at 64 channels).</summary>
    public readonly int StageK => 16;

    /// <summary>v13 loads two stages ahead: its GEMMs' B (Winograd's transformed input) streams from memory, and one
    /// stage of loads in flight falls short of what covers the memory's latency (bench/NOTES.md).</summary>
    public readonly int StagesAhead => 2;

    /// <summary>Step kk of a stage (v13, v15): a k row of a 64-wide tile is 16 Float4s, and pitch apart.</summary>
    static Block4 Step(Block4 c, ArrayView<Float4> a, ArrayView<Float4> b, int kk, int pitch)
    {
        return Block4.Fma(c, a[kk * pitch], b[kk * pitch]);
    }

    /// <summary>The 16 steps written out, so each offset is a constant (pitch is a constant in the kernels).</summary>
    public readonly Block4Runs AfterStage(ArrayView<Float4> a, ArrayView<Float4> b, int pitch)
    {
        var r = c;
        r = Step(r, a, b, 0, pitch); r = Step(r, a, b, 1, pitch); r = Step(r, a, b, 2, pitch); r = Step(r, a, b, 3, pitch);
        r = Step(r, a, b, 4, pitch); r = Step(r, a, b, 5, pitch); r = Step(r, a, b, 6, pitch); r = Step(r, a, b, 7, pitch);
        r = Step(r, a, b, 8, pitch); r = Step(r, a, b, 9, pitch); r = Step(r, a, b, 10, pitch); r = Step(r, a, b, 11, pitch);
        r = Step(r, a, b, 12, pitch); r = Step(r, a, b, 13, pitch); r = Step(r, a, b, 14, pitch); r = Step(r, a, b, 15, pitch);
        return new Block4Runs { c = r };
    }

    public readonly int Rows => 4;
    public readonly int Offset(int i, int t, int tdim) => 4 * t + i;

    public readonly Block4Runs After(ArrayView<float> at, ArrayView<float> bt, int kRow, int ty, int tx, int tdim)
    {
        Float4 a = at.Cast<Float4>()[kRow / 4 + ty], b = bt.Cast<Float4>()[kRow / 4 + tx];
        return new Block4Runs { c = Block4.Fma(c, a, b) };
    }

    public readonly float Get(int i, int j) => c.Get(i, j);
}

/// <summary>An 8 x 8 block read from shared memory 16 bytes at a time (GEMM v7, conv v10): the thread's rows are two
/// runs of 4, at 4 t and 4 tdim + 4 t, and its columns likewise, so a step of k is four Float4 loads (LDS.128): a
/// warp's A reads are broadcasts and its B reads consecutive words. The tiles must start 16-byte aligned (allocate
/// them as Float4).</summary>
public struct Block8Runs : IStagedBlock<Block8Runs>
{
    Block8 c;

    /// <summary>v12's stages are 8 deep, as v10's.</summary>
    public readonly int StageK => 8;

    /// <summary>v12 loads one stage ahead, as v10: at 128 registers it has none to spare.</summary>
    public readonly int StagesAhead => 1;

    /// <summary>Step kk of a stage (v12, v14): a k row of a 128-wide tile is 32 Float4s, pitch apart, and the second runs
    /// are 16 on.</summary>
    static Block8 Step(Block8 c, ArrayView<Float4> a, ArrayView<Float4> b, int kk, int pitch)
        => Block8.Step(c, a[kk * pitch], a[kk * pitch + 16], b[kk * pitch], b[kk * pitch + 16]);

    /// <summary>The 8 steps written out, so each offset is a constant (pitch is a constant in the kernels).</summary>
    public readonly Block8Runs AfterStage(ArrayView<Float4> a, ArrayView<Float4> b, int pitch)
    {
        var r = c;
        r = Step(r, a, b, 0, pitch); r = Step(r, a, b, 1, pitch); r = Step(r, a, b, 2, pitch); r = Step(r, a, b, 3, pitch);
        r = Step(r, a, b, 4, pitch); r = Step(r, a, b, 5, pitch); r = Step(r, a, b, 6, pitch); r = Step(r, a, b, 7, pitch);
        return new Block8Runs { c = r };
    }

    public readonly int Rows => 8;
    public readonly int Offset(int i, int t, int tdim) => i < 4 ? 4 * t + i : 4 * (tdim + t) + i - 4;

    public readonly Block8Runs After(ArrayView<float> at, ArrayView<float> bt, int kRow, int ty, int tx, int tdim)
    {
        ArrayView<Float4> a4 = at.Cast<Float4>(), b4 = bt.Cast<Float4>();
        int w = kRow / 4;
        return new Block8Runs { c = Block8.Step(c, a4[w + ty], a4[w + tdim + ty], b4[w + tx], b4[w + tdim + tx]) };
    }

    public readonly float Get(int i, int j) => c.Get(i, j);
}

/// <summary>Runs a GEMM C = op(A) op(B) as <see cref="Gemm.Run"/> does, at a version of the caller's choosing: the kernels
/// built on GEMMs (attention v1, conv v12 and v13) take one, so the autodiff ops can pass their own choice (KD_KERNELS,
/// per-shape tuning) and the checks a version (Gemm.At).</summary>
public delegate void GemmRunner(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s);

public enum GemmVersion { V1Naive = 1, V2Tiled = 2, V3Rows = 3, V4Blocked = 4, V5Tf32 = 5, V6Blocked8 = 6, V7Vector = 7, V8Vector4 = 8, V9CpuBlocks = 9, V10Pipelined = 10, V11Pipelined4 = 11, V12Unrolled = 12, V13Unrolled4 = 13, V14Padded = 14, V15Padded4 = 15, V16PipelinedTf32 = 16, V17AsyncTf32 = 17, V18PackedTf32 = 18, V19VectorTf32 = 19, V20LdmatrixTf32 = 20, V21Tf32x3 = 21, V22BulkTf32 = 22, V23PlainCopyTf32 = 23, V24BulkK32Tf32 = 24 }

/// <summary>Batched GEMM. v1: one thread per output in a grid-stride loop, no barriers. v2: T x T shared-memory tiles
/// (T = 16 on GPUs; smaller where groups are smaller), ragged edges padded with zeros. v3: a row per thread (the CPU
/// accelerator's default before v9). v4: 64 x 64 tiles with 4 x 4 register blocks per thread. v5: tf32 tensor cores (opt-in: its
/// operands keep 10 mantissa bits). v6: 128 x 128 tiles with 8 x 8 register blocks per thread. v7: v6 reading its
/// blocks from shared memory 16 bytes at a time. v8: the same for 64 x 64 tiles and 4 x 4 blocks. v9: a 4 x 8 register
/// block per unit of work with no shared memory (the CPU accelerator's default). v10 and v11: v7 and v8 software-pipelined
/// (the next stage loaded into registers while this one is multiplied; two shared buffers, one barrier per stage). v12 and
/// v13: v10 and v11 in groups of exactly 16 x 16 threads, each stage's steps of k written out at constant shared offsets.
/// v14 and v15: v12 and v13 with their shared k rows padded against bank conflicts and C stored 16 bytes at a time. v16:
/// tf32 tensor cores (opt-in, as v5) on v14's pipelined staging, 128 x 128 tiles. v17: v16's tiles staged by cp.async,
/// three stages deep, the operands' fp32 bits given to the tensor cores as they are (truncated, not rounded). v18: v17
/// with its shared tiles laid out in fragments, read 16 bytes at a time. v19: v17 copying 16 bytes at a time where every
/// operand row is 16-byte aligned (an operand whose rows run along k kept row-major in shared memory); elsewhere v17.
/// v20: v19 reading a row-major A's fragments (and a row-major B's) by ldmatrix; v19 where A is transposed. v21: fp32 on the
/// tensor cores, v20's and v19's pipelines with every product taken as three tf32 mma (3xTF32: each operand split into
/// a tf32 big part and the rest; WarpTile64.Stage16Tf32x3), in all four transpose pairs; where an operand row is not
/// 16-byte aligned, the fp32 default. Opt-in until measured on a GPU.</summary>
public static class Gemm
{
    const int MaxTile = 16;
    /// <summary>v4: each thread's block is V4Rows x V4Rows outputs; tiles advance V4K values of k at a time.</summary>
    const int V4Rows = 4, V4K = 8;
    /// <summary>v6: each thread's block is V6Rows x V6Rows outputs; tiles advance V6K values of k at a time.</summary>
    const int V6Rows = 8, V6K = 8;
    /// <summary>v5: TensorCore's block tiling.</summary>
    const int V5Tile = TensorCore.Tile, V5K = TensorCore.StageK, V5Threads = TensorCore.Threads,
        V5StrideA = TensorCore.StrideA, V5StrideB = TensorCore.StrideB;

    static void V1Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        int mn = s.M * s.N;
        int total = s.Batch * mn;
        int stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < total; idx += stride)
        {
            int bi = idx / mn, r = idx - bi * mn;
            int i = r / s.N, j = r - i * s.N;
            float acc = 0;
            for (int k = 0; k < s.K; k++) acc += a[s.IndexA(bi, i, k)] * b[s.IndexB(bi, k, j)];
            int ci = s.IndexC(bi, i, j);
            c[ci] = s.Beta == 0 ? s.Alpha * acc : s.Alpha * acc + s.Beta * c[ci];
        }
    }

    /// <summary>Group of T*T threads computes one T x T output tile; tiles are visited in a grid-stride loop.</summary>
    static void V2Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tile)
    {
        var at = SharedMemory.Allocate<float>(MaxTile * MaxTile);
        var bt = SharedMemory.Allocate<float>(MaxTile * MaxTile);
        int tx = Group.IdxX % tile, ty = Group.IdxX / tile;
        int tilesN = (s.N + tile - 1) / tile, tilesM = (s.M + tile - 1) / tile;
        int perBatch = tilesM * tilesN;
        for (int t = Grid.IdxX; t < s.Batch * perBatch; t += Grid.DimX)
        {
            int bi = t / perBatch, tr = t - bi * perBatch;
            int row = (tr / tilesN) * tile + ty, col = (tr % tilesN) * tile + tx;
            float acc = 0;
            for (int k0 = 0; k0 < s.K; k0 += tile)
            {
                int ka = k0 + tx, kb = k0 + ty;
                at[ty * tile + tx] = row < s.M && ka < s.K ? a[s.IndexA(bi, row, ka)] : 0f;
                bt[ty * tile + tx] = kb < s.K && col < s.N ? b[s.IndexB(bi, kb, col)] : 0f;
                Group.Barrier();
                for (int kk = 0; kk < tile; kk++) acc += at[ty * tile + kk] * bt[kk * tile + tx];
                Group.Barrier();
            }
            if (row < s.M && col < s.N)
            {
                int ci = s.IndexC(bi, row, col);
                c[ci] = s.Beta == 0 ? s.Alpha * acc : s.Alpha * acc + s.Beta * c[ci];
            }
        }
    }

    /// <summary>v3, for the CPU accelerator: one output row per unit of work, so index arithmetic happens once per
    /// row and the innermost loop is contiguous: C[i, :] += A(i, k) B[k, :] without TransB, a dot product of A's row
    /// with B's row j with it.</summary>
    static void V3Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        int rows = s.Batch * s.M, stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int bi = r / s.M, i = r % s.M;
            int ab = s.Base(bi, s.StrideA, s.OuterA), bb = s.Base(bi, s.StrideB, s.OuterB), cr = s.IndexC(bi, i, 0);
            // A(i, k) = a[ai + k * ak]
            int ai = ab + (s.TransA == 0 ? i * s.K : i), ak = s.TransA == 0 ? 1 : s.M;
            if (s.TransB == 0)
            {
                for (int j = 0; j < s.N; j++) c[cr + j] = s.Beta == 0 ? 0f : s.Beta * c[cr + j];
                for (int k = 0; k < s.K; k++)
                {
                    float av = s.Alpha * a[ai + k * ak];
                    int br = bb + k * s.N;
                    for (int j = 0; j < s.N; j++) c[cr + j] += av * b[br + j];
                }
            }
            else
            {
                for (int j = 0; j < s.N; j++)
                {
                    int br = bb + j * s.K;
                    float acc = 0;
                    for (int k = 0; k < s.K; k++) acc += a[ai + k * ak] * b[br + k];
                    c[cr + j] = s.Beta == 0 ? s.Alpha * acc : s.Alpha * acc + s.Beta * c[cr + j];
                }
            }
        }
    }

    /// <summary>v4: register blocking. A group of tdim x tdim threads computes a (4 tdim) x (4 tdim) tile of C (64 x 64
    /// on GPUs), each thread a 4 x 4 block whose rows and columns are tdim apart (so a warp's shared-memory reads hit
    /// consecutive banks and its stores are coalesced). Per step of k, a thread reads 8 values from shared memory for 16
    /// FMAs, where v2 reads 2 for 1. The accumulators are a Block4 value.
    /// tdim = 1 on the CPU accelerator (its groups hold 2 threads), which the checks use.</summary>
    static void V4Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
    {
        var at = SharedMemory.Allocate<float>(V4K * V4Rows * MaxTile);   // [k][m], k-major
        var bt = SharedMemory.Allocate<float>(V4K * V4Rows * MaxTile);   // [k][n]
        int tile = V4Rows * tdim, threads = tdim * tdim, t = Group.IdxX;
        int tx = t % tdim, ty = t / tdim;
        for (int w = Grid.IdxX, tiles = s.Tiles(tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, tile);
            var acc = new Block4();
            for (int k0 = 0; k0 < s.K; k0 += V4K)
            {
                // Each tile holds tile x V4K values; the threads load them in turn, zeros past the edges.
                for (int e = t; e < tile * V4K; e += threads)
                {
                    int m = e / V4K, k = e - m * V4K;
                    at[k * tile + m] = m0 + m < s.M && k0 + k < s.K ? a[s.IndexA(bi, m0 + m, k0 + k)] : 0f;
                    int kb = e / tile, n = e - kb * tile;
                    bt[kb * tile + n] = k0 + kb < s.K && n0 + n < s.N ? b[s.IndexB(bi, k0 + kb, n0 + n)] : 0f;
                }
                Group.Barrier();
                for (int kk = 0; kk < V4K; kk++) acc = Block4.Step(acc, at, bt, kk * tile + ty, kk * tile + tx, tdim);
                Group.Barrier();
            }
            for (int i = 0; i < V4Rows; i++)
                for (int j = 0; j < V4Rows; j++)
                    Store(c, s, bi, m0 + ty + i * tdim, n0 + tx + j * tdim, acc.Get(i, j));
        }
    }

    /// <summary>v6: v4 with 8 x 8 blocks. A group of tdim x tdim threads computes a (8 tdim) x (8 tdim) tile (128 x 128 on
    /// GPUs), each thread 8 rows and 8 columns tdim apart: per step of k, 16 shared reads for 64 FMAs, half v4's reads
    /// per FMA, and each operand value loaded from global memory serves 128 outputs instead of 64. Staging runs along
    /// each operand's contiguous direction, as v5's (one multiply-add per element's address).</summary>
    static void V6Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        => BlockedTiles<Block8>(a, b, c, s, tdim);

    /// <summary>v7: v6 with 16-byte shared reads (Block8Runs). cuobjdump of v6 shows each k step as 64 FFMA among 117
    /// instructions: 16 scalar LDS, each with its own address arithmetic; v7's step is four LDS.128 and 82 instructions.</summary>
    static void V7Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        => BlockedTiles<Block8Runs>(a, b, c, s, tdim);

    /// <summary>v8: v7's 16-byte reads for v4's 64 x 64 tiles (Block4Runs), with v6's staging: for the small matrices of
    /// the fmnist models, where 128-wide tiles leave multiprocessors idle.</summary>
    static void V8Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        => BlockedTiles<Block4Runs>(a, b, c, s, tdim);

    /// <summary>v10: v7 software-pipelined (PipelinedTiles). Its launch bounds keep it at 2 groups of 256 threads per
    /// multiprocessor, as v7 (ptxas: 131 registers without them, 112 with, no spills).</summary>
    [LaunchBounds(256, 2)]
    static void V10Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        => PipelinedTiles<Block8Runs>(a, b, c, s, tdim);

    /// <summary>v11: v8 software-pipelined (PipelinedTiles), for the smaller GEMMs.</summary>
    static void V11Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        => PipelinedTiles<Block4Runs>(a, b, c, s, tdim);

    /// <summary>v6-v8's staging: element e of a stage of V6K values of k by tile rows r (A's m, B's n) of an operand
    /// stored with k fastest (at r K + k) or r fastest (at k R + r), 0 past the edges. Consecutive e walk the stored order,
    /// so a warp's loads are coalesced.</summary>
    static float StageValue(ArrayView<float> src, int srcBase, int kFastest, int rLimit, int kLimit, int r0, int k0, int e, int tile)
    {
        int r = kFastest != 0 ? e / V6K : e % tile, k = kFastest != 0 ? e % V6K : e / tile;
        return r0 + r < rLimit && k0 + k < kLimit
            ? src[srcBase + (kFastest != 0 ? (r0 + r) * kLimit + k0 + k : (k0 + k) * rLimit + r0 + r)] : 0f;
    }

    /// <summary>Where StageValue's element e goes in the k-major shared tile: [k][r], tile wide.</summary>
    static int StageSlot(int kFastest, int e, int tile) => kFastest != 0 ? (e % V6K) * tile + e / V6K : e;

    /// <summary>v6-v8's staging of the stage at k0 of both operands, an element at a time (thread t: elements t, t + threads,
    /// ...). A is stored with k fastest unless transposed, B when transposed.</summary>
    static void StageElements(ArrayView<float> a, ArrayView<float> b, GemmShape s, int aBase, int bBase, ArrayView<float> at, ArrayView<float> bt,
        int m0, int n0, int k0, int tile, int t, int threads)
    {
        for (int e = t; e < tile * V6K; e += threads)
        {
            at[StageSlot(1 - s.TransA, e, tile)] = StageValue(a, aBase, 1 - s.TransA, s.M, s.K, m0, k0, e, tile);
            bt[StageSlot(s.TransB, e, tile)] = StageValue(b, bBase, s.TransB, s.N, s.K, n0, k0, e, tile);
        }
    }

    /// <summary>v6-v8: (Rows tdim)-square tiles of C, one register block per thread, k staged V6K at a time.</summary>
    static void BlockedTiles<TBlock>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        var at = SharedMemory.Allocate<Float4>(V6K * V6Rows * MaxTile / 4).Cast<float>();   // [k][m], k-major, 16-byte aligned
        var bt = SharedMemory.Allocate<Float4>(V6K * V6Rows * MaxTile / 4).Cast<float>();   // [k][n]
        int rows = default(TBlock).Rows, tile = rows * tdim, threads = tdim * tdim, t = Group.IdxX;
        int tx = t % tdim, ty = t / tdim;
        for (int w = Grid.IdxX, tiles = s.Tiles(tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = default(TBlock);
            for (int k0 = 0; k0 < s.K; k0 += V6K)
            {
                StageElements(a, b, s, aBase, bBase, at, bt, m0, n0, k0, tile, t, threads);
                Group.Barrier();
                for (int kk = 0; kk < V6K; kk++) acc = acc.After(at, bt, kk * tile, ty, tx, tdim);
                Group.Barrier();
            }
            StoreBlock(c, s, bi, m0, n0, acc, ty, tx, tdim);
        }
    }

    /// <summary>v10-v13 stage in chunks: chunk c holds 4 values of an operand's stage (depth values of k by tile rows r,
    /// stored with k fastest or r fastest, as StageValue) at one k, in rows a quarter of the tile apart. Consecutive
    /// chunks are consecutive stored values (along k when k is fastest, else along r), so each of a warp's load
    /// instructions is coalesced, and a chunk's values, like their shared slots, lie one address plus a fixed step
    /// apart. A stage is V6K deep in v10 and v11, IStagedBlock.StageK deep in v12 and v13. Its first value's row and k:</summary>
    static int ChunkRow(int kFastest, int c, int tile, int depth) => kFastest != 0 ? c / depth : c % (tile / 4);
    static int ChunkK(int kFastest, int c, int tile, int depth) => kFastest != 0 ? c % depth : c / (tile / 4);

    /// <summary>Chunks in a stage of tile x depth values.</summary>
    static int Chunks(int tile, int depth) => tile * depth / 4;

    /// <summary>Where chunk c of the stage at (r0, k0) lies in its source: its first value's index, the step between its
    /// values, and how many of the tile's rows from its first one exist (value q exists when Rows > q tile / 4; none past
    /// k's edge or for c past the stage's chunks).</summary>
    static (int At, int Step, int Rows) ChunkSource(int srcBase, int kFastest, int rLimit, int kLimit, int r0, int k0, int c, int tile, int depth)
    {
        int r = r0 + ChunkRow(kFastest, c, tile, depth), k = k0 + ChunkK(kFastest, c, tile, depth), quarter = tile / 4;
        int at = srcBase + (kFastest != 0 ? r * kLimit + k : k * rLimit + r), step = kFastest != 0 ? quarter * kLimit : quarter;
        return (at, step, k < kLimit && c < Chunks(tile, depth) ? rLimit - r : 0);
    }

    /// <summary>Chunk c of the stage at (r0, k0), 0 past the edges and for c past the stage's chunks.</summary>
    static Quad LoadChunk(ArrayView<float> src, int srcBase, int kFastest, int rLimit, int kLimit, int r0, int k0, int c, int tile, int depth = V6K)
    {
        var (at, step, rows) = ChunkSource(srcBase, kFastest, rLimit, kLimit, r0, k0, c, tile, depth);
        int quarter = tile / 4;
        return new Quad(rows > 0 ? src[at] : 0f, rows > quarter ? src[at + step] : 0f,
            rows > 2 * quarter ? src[at + 2 * step] : 0f, rows > 3 * quarter ? src[at + 3 * step] : 0f);
    }

    /// <summary>Chunk c into the k-major shared tile ([k][r], k rows <paramref name="pitch"/> floats apart: the tile's
    /// width, or more where rows are padded) at offset buffer.</summary>
    static void PutChunk(ArrayView<float> dst, int buffer, Quad v, int kFastest, int c, int tile, int depth, int pitch)
    {
        if (c >= Chunks(tile, depth)) return;   // the threads of a large group past the stage's chunks
        int slot = buffer + ChunkK(kFastest, c, tile, depth) * pitch + ChunkRow(kFastest, c, tile, depth), quarter = tile / 4;
        dst[slot] = v.X0;
        dst[slot + quarter] = v.X1;
        dst[slot + 2 * quarter] = v.X2;
        dst[slot + 3 * quarter] = v.X3;
    }

    /// <summary>Stages chunks c = first, first + threads, ... of the stage at k0 of both operands into their shared tiles
    /// at offset buffer. A is stored with k fastest unless transposed, B when transposed.</summary>
    static void StageChunks(ArrayView<float> a, ArrayView<float> b, GemmShape s, int aBase, int bBase, ArrayView<float> at, ArrayView<float> bt,
        int buffer, int m0, int n0, int k0, int tile, int first, int threads)
    {
        for (int c = first; c < Chunks(tile, V6K); c += threads)
        {
            PutChunk(at, buffer, LoadChunk(a, aBase, 1 - s.TransA, s.M, s.K, m0, k0, c, tile), 1 - s.TransA, c, tile, V6K, tile);
            PutChunk(bt, buffer, LoadChunk(b, bBase, s.TransB, s.N, s.K, n0, k0, c, tile), s.TransB, c, tile, V6K, tile);
        }
    }

    /// <summary>v10 and v11: BlockedTiles software-pipelined, with two shared buffers per operand. While the group multiplies
    /// the stage in one buffer, each thread loads a chunk of each operand's next stage into registers (4 values: with 256
    /// threads one chunk is a thread's whole share of a 128-wide tile), then stores them into the other
    /// buffer: the global loads' latency hides behind a stage of FMAs, and a stage takes one barrier instead of two (a
    /// buffer is written only after the barrier that ends its last reads). In smaller groups (the CPU accelerator's) the
    /// rest of a thread's share is staged after the FMAs, unpipelined.</summary>
    static void PipelinedTiles<TBlock>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tdim)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        const int Buffer = V6K * V6Rows * MaxTile;   // floats of one operand's stage: buffers at 0 and Buffer
        var at = SharedMemory.Allocate<Float4>(2 * Buffer / 4).Cast<float>();   // [k][m], k-major, 16-byte aligned
        var bt = SharedMemory.Allocate<Float4>(2 * Buffer / 4).Cast<float>();   // [k][n]
        int rows = default(TBlock).Rows, tile = rows * tdim, threads = tdim * tdim, t = Group.IdxX;
        int tx = t % tdim, ty = t / tdim, kA = 1 - s.TransA, kB = s.TransB;
        for (int w = Grid.IdxX, tiles = s.Tiles(tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = default(TBlock);
            StageChunks(a, b, s, aBase, bBase, at, bt, 0, m0, n0, 0, tile, t, threads);
            Group.Barrier();
            for (int k0 = 0, cur = 0; k0 < s.K; k0 += V6K, cur = Buffer - cur)
            {
                int kNext = k0 + V6K, next = Buffer - cur;
                // Past the last stage (kNext >= K) the loads are skipped and zeros come back.
                Quad pa = LoadChunk(a, aBase, kA, s.M, s.K, m0, kNext, t, tile), pb = LoadChunk(b, bBase, kB, s.N, s.K, n0, kNext, t, tile);
                for (int kk = 0; kk < V6K; kk++) acc = acc.After(at, bt, cur + kk * tile, ty, tx, tdim);
                if (kNext < s.K)
                {
                    PutChunk(at, next, pa, kA, t, tile, V6K, tile);
                    PutChunk(bt, next, pb, kB, t, tile, V6K, tile);
                    StageChunks(a, b, s, aBase, bBase, at, bt, next, m0, n0, kNext, tile, t + threads, threads);
                }
                Group.Barrier();
            }
            StoreBlock(c, s, bi, m0, n0, acc, ty, tx, tdim);
        }
    }

    /// <summary>v12 and v13: the group's side, fixed so that the shared offsets are constants: the side the other
    /// register-tiled versions take on GPUs.</summary>
    public const int UnrolledSide = MaxTile;

    /// <summary>v12: v10 with each stage's 8 steps of k written out at constant shared offsets (UnrolledTiles).</summary>
    [LaunchBounds(256, 2)]
    static void V12Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
        => UnrolledTiles<Block8Runs>(a, b, c, s, 0, 0);

    /// <summary>v13: v11 with stages 16 deep, loaded two stages ahead, their steps of k written out at constant shared offsets
    /// (UnrolledTiles). At 3 groups a multiprocessor ptxas keeps one value in local memory, read once per tile.</summary>
    [LaunchBounds(256, 3)]
    static void V13Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
        => UnrolledTiles<Block4Runs>(a, b, c, s, 0, 0);

    /// <summary>v14: v12 with its shared k rows padded by 16 bytes and 16-byte stores of C where C allows them
    /// (<paramref name="vectorC"/>, see VectorC).</summary>
    [LaunchBounds(256, 2)]
    static void V14Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int vectorC)
        => UnrolledTiles<Block8Runs>(a, b, c, s, 1, vectorC);

    /// <summary>v15: v13 with the same padding and stores as v14.</summary>
    [LaunchBounds(256, 3)]
    static void V15Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int vectorC)
        => UnrolledTiles<Block4Runs>(a, b, c, s, 1, vectorC);

    /// <summary>v12-v15: PipelinedTiles in groups of exactly 16 x 16 threads. With the side a constant, a thread's
    /// shared runs of a whole stage lie at constant offsets from one address per operand and stage
    /// (<see cref="IStagedBlock{TSelf}.AfterStage"/>), which ptxas folds into the loads: v10 and v11 compute every
    /// load's address. A stage of either operand is 256 chunks, so each thread stages one chunk of each: v13's 64-wide
    /// tiles take stages 16 deep, where v11 has half its threads stage nothing; and v13 loads two stages ahead
    /// (IStagedBlock.StagesAhead).
    /// <paramref name="pad"/> (v14, v15: 1) puts that many Float4s after each shared k row. An operand stored with k fastest
    /// (A untransposed, B transposed) is staged by a warp as 16 or 8 values of k at 2 or 4 rows, which without padding
    /// land in the same bank (Nsight Compute on an H100: 9-way conflicts on v13's stores at fmnist's Winograd GEMM, 16-way
    /// with B transposed, 4.5-way on v12's at 4096^3); 16 bytes a row spread them over the banks. <paramref name="vectorC"/>
    /// (1 where VectorC allows) stores each run of 4 columns of C at once: a thread's columns are 16 bytes apart, so
    /// stored one by one a warp's stores used 8 of every 32 bytes they moved.</summary>
    static void UnrolledTiles<TBlock>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pad, int vectorC)
        where TBlock : struct, IStagedBlock<TBlock>
    {
        // Float4s of one operand's stage (buffers at 0 and Buffer): a stage is 256 Float4s, at most 16 k rows of padding.
        const int Buffer = V6K * V6Rows * MaxTile / 4 + 16;
        var at = SharedMemory.Allocate<Float4>(2 * Buffer);   // [k][m], k-major
        var bt = SharedMemory.Allocate<Float4>(2 * Buffer);   // [k][n]
        ArrayView<float> atf = at.Cast<float>(), btf = bt.Cast<float>();
        int tile = default(TBlock).Rows * UnrolledSide, depth = default(TBlock).StageK, t = Group.IdxX;
        int ahead = default(TBlock).StagesAhead, pitch = tile / 4 + pad;
        int tx = t % UnrolledSide, ty = t / UnrolledSide, kA = 1 - s.TransA, kB = s.TransB;
        for (int w = Grid.IdxX, tiles = s.Tiles(tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = default(TBlock);
            PutChunk(atf, 0, LoadChunk(a, aBase, kA, s.M, s.K, m0, 0, t, tile, depth), kA, t, tile, depth, 4 * pitch);
            PutChunk(btf, 0, LoadChunk(b, bBase, kB, s.N, s.K, n0, 0, t, tile, depth), kB, t, tile, depth, 4 * pitch);
            Quad pa = default, pb = default;   // the next stage's chunks, loaded a stage early (two stages ahead)
            if (ahead == 2)
            {
                pa = LoadChunk(a, aBase, kA, s.M, s.K, m0, depth, t, tile, depth);
                pb = LoadChunk(b, bBase, kB, s.N, s.K, n0, depth, t, tile, depth);
            }
            Group.Barrier();
            for (int k0 = 0, cur = 0; k0 < s.K; k0 += depth, cur = Buffer - cur)
            {
                int kNext = k0 + depth;
                // The chunks of the stage `ahead` stages on; past the last stage the loads are skipped and zeros come back.
                Quad na = LoadChunk(a, aBase, kA, s.M, s.K, m0, k0 + ahead * depth, t, tile, depth), nb = LoadChunk(b, bBase, kB, s.N, s.K, n0, k0 + ahead * depth, t, tile, depth);
                if (ahead == 1) (pa, pb) = (na, nb);
                acc = acc.AfterStage(at.SubView(cur + ty), bt.SubView(cur + tx), pitch);
                if (kNext < s.K)
                {
                    PutChunk(atf, 4 * (Buffer - cur), pa, kA, t, tile, depth, 4 * pitch);
                    PutChunk(btf, 4 * (Buffer - cur), pb, kB, t, tile, depth, 4 * pitch);
                }
                Group.Barrier();
                (pa, pb) = (na, nb);
            }
            if (vectorC != 0) StoreRuns(c, s, bi, m0, n0, acc, ty, tx);
            else StoreBlock(c, s, bi, m0, n0, acc, ty, tx, UnrolledSide);
        }
    }

    /// <summary>Whether a kernel may store C <paramref name="floats"/> at a time (v14 and v15: 4; v16-v18: 2): every run of
    /// that many columns starts aligned to its size (the view at a multiple of it into its buffer, N and the batch strides
    /// multiples of it), and C is not read (Beta 0).</summary>
    public static bool VectorC(ArrayView<float> c, GemmShape s, int floats = 4)
        => Launch.Aligned(c, 4 * floats) && s.N % floats == 0 && s.StrideC % floats == 0 && s.OuterC % floats == 0 && s.Beta == 0;

    /// <summary>A runs block (rows and columns in runs of 4) into C, each run of 4 columns inside C as one Float4 store,
    /// the rest as StoreBlock.</summary>
    static void StoreRuns<TBlock>(ArrayView<float> c, GemmShape s, int bi, int m0, int n0, TBlock acc, int ty, int tx)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        var cv = c.Cast<Float4>();
        for (int i = 0; i < acc.Rows; i++)
        {
            int row = m0 + acc.Offset(i, ty, UnrolledSide);
            for (int j = 0; j < acc.Rows; j += 4)
            {
                int col = n0 + acc.Offset(j, tx, UnrolledSide);
                if (row < s.M && col + 3 < s.N)
                    cv[s.IndexC(bi, row, col) / 4] = new Float4(s.Alpha * acc.Get(i, j), s.Alpha * acc.Get(i, j + 1),
                        s.Alpha * acc.Get(i, j + 2), s.Alpha * acc.Get(i, j + 3));
                else
                    for (int q = 0; q < 4; q++) Store(c, s, bi, row, col + q, acc.Get(i, j + q));
            }
        }
    }

    /// <summary>A thread's register block into C at tile (m0, n0), what lies inside.</summary>
    static void StoreBlock<TBlock>(ArrayView<float> c, GemmShape s, int bi, int m0, int n0, TBlock acc, int ty, int tx, int tdim)
        where TBlock : struct, IRegisterBlock<TBlock>
    {
        for (int i = 0; i < acc.Rows; i++)
            for (int j = 0; j < acc.Rows; j++)
                Store(c, s, bi, m0 + acc.Offset(i, ty, tdim), n0 + acc.Offset(j, tx, tdim), acc.Get(i, j));
    }

    /// <summary>v5: tf32 tensor cores (<see cref="TensorCore"/>). A group of four warps computes a 64 x 64 tile of C,
    /// each warp a 32 x 32 quarter (a <see cref="WarpTile"/>: 2 x 4 mma tiles of 16 x 8, 32 accumulators per lane).
    /// Operands are rounded to tf32 as they are staged in shared memory: the result is that of tf32 inputs with fp32
    /// accumulation, as PyTorch's allow_tf32. Needs 32-lane warps and 128-thread groups (the CPU accelerator's device
    /// with 32-thread warps runs it emulated).</summary>
    static void V5Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        var at = SharedMemory.Allocate<float>(V5Tile * V5StrideA);   // [m][k]
        var bt = SharedMemory.Allocate<float>(V5K * V5StrideB);      // [k][n]
        var scratch = TensorCore.Scratch();
        WarpTile.Declare();
        int t = Group.IdxX, warp = Warp.WarpIdx;
        int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
        for (int w = Grid.IdxX, tiles = s.Tiles(V5Tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, V5Tile);
            var acc = WarpTile.Zero();
            // Each thread stages 8 values of each tile per stage, along the operand's contiguous direction where
            // that keeps a warp's loads coalesced: A (m, k) with k fastest unless A is stored transposed, B (k, n)
            // with n fastest unless B is. Element (r, c) of a run is then base + r * step: one multiply-add each.
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            for (int k0 = 0; k0 < s.K; k0 += V5K)
            {
                for (int e = t; e < V5Tile * V5K; e += V5Threads)
                {
                    // A: row m of op(A), column k; stored K x M when transposed.
                    int m = s.TransA == 0 ? e / V5K : e % V5Tile, k = s.TransA == 0 ? e % V5K : e / V5Tile;
                    int ga = aBase + (s.TransA == 0 ? (m0 + m) * s.K + k0 + k : (k0 + k) * s.M + m0 + m);
                    at[m * V5StrideA + k] = m0 + m < s.M && k0 + k < s.K ? TensorCore.RoundTf32(a[ga]) : 0f;
                    // B: row k of op(B), column n; stored N x K when transposed.
                    int n = s.TransB == 0 ? e % V5Tile : e / V5K, kb = s.TransB == 0 ? e / V5Tile : e % V5K;
                    int gb = bBase + (s.TransB == 0 ? (k0 + kb) * s.N + n0 + n : (n0 + n) * s.K + k0 + kb);
                    bt[kb * V5StrideB + n] = k0 + kb < s.K && n0 + n < s.N ? TensorCore.RoundTf32(b[gb]) : 0f;
                }
                Group.Barrier();
                for (int kk = 0; kk < V5K; kk += 8)
                    acc = WarpTile.Step(acc, at, wm, V5StrideA, bt, wn, V5StrideB, kk, scratch);
                Group.Barrier();
            }
            // Lane (g, t) holds rows g and g + 8 and columns 2t and 2t + 1 of each 16 x 8 mma tile.
            int lane = Warp.LaneIdx, row = m0 + wm + (lane >> 2), col = n0 + wn + 2 * (lane & 3);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    for (int e = 0; e < 4; e++)
                        Store(c, s, bi, row + 16 * i + 8 * (e >> 1), col + 8 * j + (e & 1), acc.Get(i, j, e));
        }
    }

    /// <summary>v16: 128 x 128 x 16 tiles.</summary>
    const int V16Tile = 128, V16K = 16, V16Threads = 256, V16Pitch = V16Tile + 8, V16Buffer = V16K * V16Pitch;

    /// <summary>v16: tf32 tensor cores with v14's software pipeline. Eight warps compute a 128 x 128 tile of C, each a
    /// 64 x 32 <see cref="WarpTile64"/> (16 mma per 8 values of k, 64 accumulators per lane). Stages are 16 values of k,
    /// in two shared buffers per operand, both operands k-major ([k][m], [k][n]) with k rows 136 floats apart, so a
    /// warp's fragment reads (k rows t and t + 4, columns g and g + 8) hit 32 different banks. While the warps multiply
    /// one buffer, each thread loads its two chunks of each operand's next stage (v14's chunks, one per 8 values of k)
    /// into registers, rounds them to tf32 and stores them into the other buffer: one barrier per stage. v5 stages
    /// unpipelined, one value at a time, between two barriers, for 8 mma per warp. Needs 32-lane warps and groups of
    /// 256 threads (the CPU accelerator runs it emulated on a device built so).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V16Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long cAddress)
    {
        var at = SharedMemory.Allocate<float>(2 * V16Buffer);   // [k][m], buffers at 0 and V16Buffer
        var bt = SharedMemory.Allocate<float>(2 * V16Buffer);   // [k][n]
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        int t = Group.IdxX, warp = Warp.WarpIdx, lane = Warp.LaneIdx, kA = 1 - s.TransA, kB = s.TransB;
        int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;   // the warp's 64 x 32 part of the tile (2 x 4 warps)
        int fragA = (lane & 3) * V16Pitch + wm + (lane >> 2), fragB = (lane & 3) * V16Pitch + wn + (lane >> 2);
        for (int w = Grid.IdxX, tiles = s.Tiles(V16Tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, V16Tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = WarpTile64.Zero();
            StageTf32(at, 0, LoadChunk(a, aBase, kA, s.M, s.K, m0, 0, t, V16Tile), LoadChunk(a, aBase, kA, s.M, s.K, m0, 8, t, V16Tile), kA, t);
            StageTf32(bt, 0, LoadChunk(b, bBase, kB, s.N, s.K, n0, 0, t, V16Tile), LoadChunk(b, bBase, kB, s.N, s.K, n0, 8, t, V16Tile), kB, t);
            Group.Barrier();
            for (int k0 = 0, cur = 0; k0 < s.K; k0 += V16K, cur = V16Buffer - cur)
            {
                int kNext = k0 + V16K;
                // The next stage's chunks; past the last stage the loads are skipped and zeros come back.
                Quad a0 = LoadChunk(a, aBase, kA, s.M, s.K, m0, kNext, t, V16Tile), a1 = LoadChunk(a, aBase, kA, s.M, s.K, m0, kNext + 8, t, V16Tile);
                Quad b0 = LoadChunk(b, bBase, kB, s.N, s.K, n0, kNext, t, V16Tile), b1 = LoadChunk(b, bBase, kB, s.N, s.K, n0, kNext + 8, t, V16Tile);
                acc = WarpTile64.Stage16(acc, at.SubView(cur + fragA), bt.SubView(cur + fragB), V16Pitch, scratch);
                if (kNext < s.K)
                {
                    StageTf32(at, V16Buffer - cur, a0, a1, kA, t);
                    StageTf32(bt, V16Buffer - cur, b0, b1, kB, t);
                }
                Group.Barrier();
            }
            StoreWarpTile64(c, s, pairs, cAddress, bi, m0 + wm, n0 + wn, acc);
        }
    }

    /// <summary>v16: a thread's two chunks of a stage (k rows 0-7 and 8-15 of it), rounded to tf32, into the buffer at dst.</summary>
    static void StageTf32(ArrayView<float> tile, int dst, Quad first, Quad second, int kFastest, int t)
    {
        PutChunk(tile, dst, TensorCore.RoundTf32(first), kFastest, t, V16Tile, V6K, V16Pitch);
        PutChunk(tile, dst + V6K * V16Pitch, TensorCore.RoundTf32(second), kFastest, t, V16Tile, V6K, V16Pitch);
    }

    /// <summary>v16-v18: a warp's 64 x 32 tile, whose first row and column in C are (r0, c0), into C. Where the whole
    /// tile lies inside C and C takes 8-byte stores (<paramref name="pairs"/>: VectorC for runs of 2), on CUDA straight
    /// from the accumulators' registers (WarpTile64.StoreInside, at C's device address <paramref name="cAddress"/>);
    /// else one value at a time. Lane (g, t) holds rows g and g + 8 and columns 2t and 2t + 1 of each 16 x 8 mma tile.</summary>
    static void StoreWarpTile64(ArrayView<float> c, GemmShape s, int pairs, long cAddress, int bi, int r0, int c0, WarpTile64 acc)
    {
        int lane = Warp.LaneIdx, row = r0 + (lane >> 2), col = c0 + 2 * (lane & 3);
        if (CudaAsm.IsSupported && pairs != 0 && r0 + 64 <= s.M && c0 + 32 <= s.N)
        {
            WarpTile64.StoreInside(cAddress + 4L * s.IndexC(bi, row, col), 4L * s.N, s.Alpha);
            return;
        }
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                for (int e = 0; e < 4; e++)
                    Store(c, s, bi, row + 16 * i + 8 * (e >> 1), col + 8 * j + (e & 1), acc.Get(i, j, e));
    }

    /// <summary>v17 and v18: three stages in flight.</summary>
    const int V17Stages = 3;

    /// <summary>Floats of one operand's stage in v18's fragment-packed layout (128 x 16, no padding).</summary>
    const int V18Buffer = V16Tile * V16K;

    /// <summary>Floats of v17's (v18's, v19's) dynamic shared memory: V17Stages buffers of each operand, 52 KB (48 KB;
    /// v19 51-60 KB by its layouts, which follow <paramref name="s"/>'s transposes), past what a group gets beside its
    /// static scratch without SharedMemoryLimit.Raise.</summary>
    public static int AsyncSharedFloats(GemmVersion v, GemmShape s) => v switch
    {
        GemmVersion.V18PackedTf32 => 2 * V17Stages * V18Buffer,
        GemmVersion.V19VectorTf32 or GemmVersion.V20LdmatrixTf32 or GemmVersion.V21Tf32x3 or GemmVersion.V23PlainCopyTf32
            => V17Stages * (V19Buffer(1 - s.TransA) + V19Buffer(s.TransB)),
        GemmVersion.V22BulkTf32 => V17Stages * (V19Buffer(1 - s.TransA) + V19Buffer(s.TransB)) + V22BarrierFloats,
        GemmVersion.V24BulkK32Tf32 => V17Stages * (V24Buffer(1 - s.TransA) + V24Buffer(s.TransB)) + V22BarrierFloats,
        _ => 2 * V17Stages * V16Buffer,
    };

    /// <summary>v17: v16's tiles, warps and shared layout, staged by cp.async (<see cref="AsyncCopy"/>) three stages deep.
    /// Each thread copies its chunks (v16's) straight from global to shared memory: no registers hold them, no
    /// instructions store them, and two stages load while one is multiplied. At the top of each stage a thread waits
    /// for its copies of that stage, the group meets at one barrier (every copy visible; every warp past the buffer the
    /// new copies go to), then issues the copies of the stage two on and multiplies. Nothing rounds the operands: the
    /// tensor cores read the top 19 bits of each fp32 value (truncation), as PyTorch's tf32 matmuls give them.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V17Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => AsyncTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0);

    /// <summary>v18: v17 with its shared tiles laid out in fragments (WarpTile64.PackedSlotA and PackedSlotB): each
    /// lane's values for an mma are one Float4, so a warp reads a stage in 12 LDS.128 where v17 takes 48 LDS. The 4-byte
    /// copies put each value where its fragment wants it, and a chunk's values (rows 32 apart) still lie a constant
    /// 256 floats apart.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V18Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => AsyncTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1);

    /// <summary>v17 (<paramref name="packed"/> 0) and v18 (1); packed is a constant in each entry, so each compiles
    /// only its own layout.</summary>
    static void AsyncTiles(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress,
        long cAddress, int packed)
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();   // A's buffers, then B's; Float4 for the alignment v18's reads need
        var sh = sh4.Cast<float>();
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        int t = Group.IdxX, warp = Warp.WarpIdx, lane = Warp.LaneIdx, buffer = packed != 0 ? V18Buffer : V16Buffer;
        int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
        // v17: this lane's first fragment value, in floats; v18: its first Float4 of the warp's first mma tile (or pair).
        int fragA = packed != 0 ? (wm / 16) * 32 + lane : (lane & 3) * V16Pitch + wm + (lane >> 2);
        int fragB = packed != 0 ? V17Stages * V18Buffer / 4 + (wn / 16) * 32 + lane : V17Stages * V16Buffer + (lane & 3) * V16Pitch + wn + (lane >> 2);
        int kA = 1 - s.TransA, kB = s.TransB;
        int a0 = AsyncSlot(kA, t, 0, packed, 1), a1 = AsyncSlot(kA, t, V6K, packed, 1);
        int b0 = AsyncSlot(kB, t, 0, packed, 0), b1 = AsyncSlot(kB, t, V6K, packed, 0);
        for (int w = Grid.IdxX, tiles = s.Tiles(V16Tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, V16Tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = WarpTile64.Zero();
            for (int p = 0; p < V17Stages - 1; p++)
            {
                CopyStage(a, b, s, aAddress, bAddress, aBase, bBase, sh, p, m0, n0, p * V16K, t, packed, a0, a1, b0, b1);
                AsyncCopy.Commit();
            }
            // Stage i sits in buffer i % 3; the copies issued during it fill buffer (i + 2) % 3, the one stage i - 1 read.
            for (int k0 = 0, cur = 0, fill = V17Stages - 1; k0 < s.K; k0 += V16K)
            {
                AsyncCopy.WaitAllButOne();   // this thread's copies of this stage have landed
                Group.Barrier();
                int ahead = k0 + (V17Stages - 1) * V16K;
                if (ahead < s.K) CopyStage(a, b, s, aAddress, bAddress, aBase, bBase, sh, fill, m0, n0, ahead, t, packed, a0, a1, b0, b1);
                AsyncCopy.Commit();   // an empty group past the last stage keeps the count
                acc = packed != 0
                    ? WarpTile64.Stage16Packed(acc, sh4.SubView(cur * V18Buffer / 4 + fragA), sh4.SubView(cur * V18Buffer / 4 + fragB), scratch)
                    : WarpTile64.Stage16(acc, sh.SubView(cur * V16Buffer + fragA), sh.SubView(cur * V16Buffer + fragB), V16Pitch, scratch);
                cur = cur == V17Stages - 1 ? 0 : cur + 1;
                fill = fill == V17Stages - 1 ? 0 : fill + 1;
            }
            Group.Barrier();   // every warp is done with the buffers before the next tile's first copies
            StoreWarpTile64(c, s, pairs, cAddress, bi, m0 + wm, n0 + wn, acc);
        }
    }

    /// <summary>v17 and v18: where this thread's chunk of the k rows from <paramref name="half"/> (0 or 8) of a stage goes
    /// in an operand's buffer (<paramref name="isA"/>: A's layout, else B's). The same for every stage and tile.</summary>
    static int AsyncSlot(int kFastest, int t, int half, int packed, int isA)
    {
        int r = ChunkRow(kFastest, t, V16Tile, V6K), k = half + ChunkK(kFastest, t, V16Tile, V6K);   // row (column) and k in the stage
        return packed == 0 ? k * V16Pitch + r : isA != 0 ? WarpTile64.PackedSlotA(r, k) : WarpTile64.PackedSlotB(k, r);
    }

    /// <summary>v17 and v18: this thread's copies of the stage at k0 into buffer <paramref name="buffer"/>: its two chunks
    /// (k rows 0-7 and 8-15 of the stage) of each operand, A stored with k fastest unless transposed, B when transposed,
    /// into the slots AsyncSlot gives.</summary>
    static void CopyStage(ArrayView<float> a, ArrayView<float> b, GemmShape s, long aAddress, long bAddress, int aBase, int bBase,
        ArrayView<float> sh, int buffer, int m0, int n0, int k0, int t, int packed, int a0, int a1, int b0, int b1)
    {
        int kA = 1 - s.TransA, kB = s.TransB, size = packed != 0 ? V18Buffer : V16Buffer, spacing = packed != 0 ? 256 : 32;
        int slotA = buffer * size, slotB = (V17Stages + buffer) * size;
        var (at, step, rows) = ChunkSource(aBase, kA, s.M, s.K, m0, k0, t, V16Tile, V6K);
        AsyncCopy.Chunk(sh, slotA + a0, spacing, a, aAddress, at, step, rows);
        (at, step, rows) = ChunkSource(aBase, kA, s.M, s.K, m0, k0 + V6K, t, V16Tile, V6K);
        AsyncCopy.Chunk(sh, slotA + a1, spacing, a, aAddress, at, step, rows);
        (at, step, rows) = ChunkSource(bBase, kB, s.N, s.K, n0, k0, t, V16Tile, V6K);
        AsyncCopy.Chunk(sh, slotB + b0, spacing, b, bAddress, at, step, rows);
        (at, step, rows) = ChunkSource(bBase, kB, s.N, s.K, n0, k0 + V6K, t, V16Tile, V6K);
        AsyncCopy.Chunk(sh, slotB + b1, spacing, b, bAddress, at, step, rows);
    }

    /// <summary>Floats of a v19 operand buffer: a row-major tile (its rows along k: 128 rows of a stage's 16 values of k,
    /// FragA.RowsPitch apart) or a k-major one (v16's: 16 k rows, V16Pitch apart).</summary>
    static int V19Buffer(int rows) => rows != 0 ? V16Tile * FragA.RowsPitch : V16Buffer;

    /// <summary>Whether v19's 16-byte copies apply: every row of A and B (along k where not transposed, else along m or
    /// n) starts 16-byte aligned: the views' addresses, the row lengths and the batch strides multiples of 4 floats.
    /// Elsewhere v19 runs v17.</summary>
    public static bool VectorOperands(ArrayView<float> a, ArrayView<float> b, GemmShape s)
        => Launch.Aligned(a, 16) && Launch.Aligned(b, 16) && (s.TransA == 0 ? s.K : s.M) % 4 == 0 && (s.TransB == 0 ? s.N : s.K) % 4 == 0
           && s.StrideA % 4 == 0 && s.OuterA % 4 == 0 && s.StrideB % 4 == 0 && s.OuterB % 4 == 0;

    /// <summary>v19: v17's tiles, warps, stages and schedule, with each copy 16 bytes (cp.async.cg) where v17's are 4: a
    /// thread issues 4 copies a stage where v17 issues 16, each copy's address and bounds check computed once for 4
    /// values (ptxas put v18's stage loop at 221 instructions per 32 mma, 150 of them integer arithmetic for its 4-byte
    /// copies). An operand whose rows lie along k (A untransposed, B transposed) is kept row-major ([m][k], [n][k]: 20
    /// floats a row, FragA.LoadRows and FragB.LoadRows); one whose rows lie along m or n in v16's k-major tile. One entry
    /// per pair of layouts, so each compiles only its own. Needs VectorOperands (the dispatch runs v17 elsewhere).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V19Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0);

    /// <summary>v19 with B transposed (both operands' rows along k).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V19BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1);

    /// <summary>v19 with A transposed (A's rows along m, B's along n).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V19ATKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 0);

    /// <summary>v19 with both transposed.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V19ATBTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 1);

    /// <summary>v20: v19 with A's fragments read by ldmatrix (WarpTile64.Stage16Ldsm: one instruction for an mma tile's
    /// four values of A, where v19 takes four LDS; ptxas put v19's stage loop at 51 LDS of about 149 instructions, and
    /// Nsight Compute found its warps waiting on the MIO queue 4.0 of every 10.3 cycles). A untransposed, B k-major.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V20Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0, 1);

    /// <summary>v20 with B transposed: both operands row-major, both read by ldmatrix (two B tiles per instruction).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V20BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1, 1);

    /// <summary>v21 (fp32 by three tf32 mma a product): v20's operand reads where A is row-major, v19's where it is
    /// transposed. Nothing else differs from v19 and v20: the same copies, stages and stores.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V21Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0, tf32x3: 1);

    /// <summary>v21 with B transposed.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V21BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1, tf32x3: 1);

    /// <summary>v21 with A transposed.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V21ATKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 0, tf32x3: 1);

    /// <summary>v21 with both transposed.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V21ATBTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 1, tf32x3: 1);

    /// <summary>v22 (tf32): v20's tiles, stages and operand reads, each stage's operands copied by bulk copies
    /// (<see cref="BulkCopy"/>: cp.async.bulk, sm_90) where v20 issues 16-byte cp.async copies. A row-major operand is
    /// 128 rows of 64 bytes a stage, a copy each; a k-major one 16 rows of 512 bytes; the copies are spread over the
    /// eight warps (BulkStage). The copies land on the stage buffer's mbarrier, which every thread waits for after the
    /// stage's group barrier. Only where the whole 128 x 128 tile and the stage's 16 values of k lie inside the operands
    /// (bulk copies read whole rows and zero nothing); elsewhere a stage is copied as v20 copies it. Loaded with
    /// <c>.target sm_90</c> (<see cref="PtxTarget"/>).</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V22Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0, 1, bulk: 1);

    /// <summary>v22 with B transposed (both operands row-major, both read by ldmatrix, as v20's).</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V22BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1, 1, bulk: 1);

    /// <summary>v22 with A transposed (v19's reads).</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V22ATKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 0, bulk: 1);

    /// <summary>v22 with both transposed (v19's reads).</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V22ATBTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 1, bulk: 1);

    /// <summary>v23 (tf32): v20 (v19 where A is transposed) whose 16-byte copies drop the zero-fill operand where the whole
    /// 128 x 128 tile and the stage's 16 values of k lie inside (<see cref="AsyncCopy.VectorWhole"/>): ptxas gives each
    /// zero-filling copy a predicate (LDGSTS ... P), and Nsight Compute counted 14-15 shared wavefronts and 24-32 L2
    /// sectors a warp for v20's copies where 4 and 16 would do; whether the predicate is why is what v23 measures. Edge
    /// tiles and a last partial stage are copied as v20 copies them.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V23Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0, 1, plain: 1);

    /// <summary>v23 with B transposed.</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V23BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1, 1, plain: 1);

    /// <summary>v23 with A transposed (v19's reads).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V23ATKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 0, plain: 1);

    /// <summary>v23 with both transposed (v19's reads).</summary>
    [LaunchBounds(V16Threads, 2)]
    static void V23ATBTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 0, 1, plain: 1);

    /// <summary>v24 (tf32): v22 with stages of 32 values of k (V24K): a row-major operand's rows are 128 bytes (one bulk
    /// copy each, FragA.RowsPitch32 apart), a k-major one's 32 rows of 512 bytes, so a stage takes 160 copies (NN) for
    /// 512 mma where v22's takes 144 for 256: half the copies, announcements and waits per mma, and copies twice as
    /// large. 105 KB of shared memory at NN and NT (v22: 57 KB), which still lets two groups share a multiprocessor
    /// beside their static 6 KB. A row-major A only (ldmatrix, as v20): where A is transposed it runs v22.</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V24Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 0, 1, bulk: 1, wide: 1);

    /// <summary>v24 with B transposed (both operands row-major, both read by ldmatrix).</summary>
    [LaunchBounds(V16Threads, 2), PtxTarget(9, 0)]
    static void V24BTKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress, long cAddress)
        => VectorTiles(a, b, c, s, pairs, aAddress, bAddress, cAddress, 1, 1, 1, bulk: 1, wide: 1);

    /// <summary>v24's values of k a stage.</summary>
    const int V24K = 32;

    /// <summary>Floats of a v24 operand buffer: 128 rows of FragA.RowsPitch32 (rows along k), or 32 k rows of V16Pitch.</summary>
    static int V24Buffer(int rows) => rows != 0 ? V16Tile * FragA.RowsPitch32 : V24K * V16Pitch;

    /// <summary>v22's three mbarriers (2 ints each) after its operand buffers, padded to 16 bytes.</summary>
    const int V22BarrierFloats = 4 * ((V17Stages * BulkCopy.BarrierInts + 3) / 4);

    /// <summary>v19's body (and v20's: <paramref name="ldsm"/> 1, A row-major; v21's: <paramref name="tf32x3"/> 1; v22's:
    /// <paramref name="bulk"/> 1; v23's: <paramref name="plain"/> 1; v24's: bulk and <paramref name="wide"/> 1, stages of
    /// 32 values of k, A row-major):
    /// <paramref name="aRows"/> and <paramref name="bRows"/> (constants in each entry) say which operands are kept
    /// row-major (rows along k).</summary>
    static void VectorTiles(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int pairs, long aAddress, long bAddress,
        long cAddress, int aRows, int bRows, int ldsm = 0, int tf32x3 = 0, int bulk = 0, int plain = 0, int wide = 0)
    {
        var sh = SharedMemory.GetDynamic<Float4>().Cast<float>();   // A's three buffers, then B's (requested as Float4s, as v17's)
        var scratch = TensorCore.Scratch();
        // v22: the stage buffers' mbarriers after B's buffers; bit f of phases is the parity buffer f's next wait takes, of
        // bulkIn whether buffer f holds a stage of bulk copies not yet waited for.
        var bars = SharedMemory.GetDynamic<Float4>().Cast<int>();
        // v24: stages of 32 values of k, row-major rows FragA.RowsPitch32 apart.
        int stageK = wide != 0 ? V24K : V16K, rowsPitch = wide != 0 ? FragA.RowsPitch32 : FragA.RowsPitch;
        int bufferA = wide != 0 ? V24Buffer(aRows) : V19Buffer(aRows), bufferB = wide != 0 ? V24Buffer(bRows) : V19Buffer(bRows);
        int barsAt = V17Stages * (bufferA + bufferB), phases = 0, bulkIn = 0, broken = 0;
        if (bulk != 0)
        {
            if (Group.IdxX == 0)
            {
                for (int f = 0; f < V17Stages; f++) BulkCopy.Init(bars, barsAt + f * BulkCopy.BarrierInts);
                BulkCopy.FenceInit();
            }
            Group.Barrier();
        }
        WarpTile64.Declare();
        if (tf32x3 != 0) WarpTile64.DeclareTf32x3();
        int t = Group.IdxX, warp = Warp.WarpIdx, lane = Warp.LaneIdx, g = lane >> 2, q = lane & 3;
        int wm = (warp >> 2) * 64, wn = (warp & 3) * 32, atB = V17Stages * bufferA;
        // This lane's first fragment value: (row g, k t) of a row-major tile, (k row t, column g) of a k-major one.
        int fragA = aRows != 0 ? (wm + g) * rowsPitch + q : q * V16Pitch + wm + g;
        int fragB = atB + (bRows != 0 ? (wn + g) * rowsPitch + q : q * V16Pitch + wn + g);
        // v20-v24: this lane's ldmatrix rows of the warp's first A tile and (row-major B) first pair of B tiles.
        int ldsmA = wm * rowsPitch + WarpTile64.LdsmRowA(lane, rowsPitch), ldsmB = atB + wn * rowsPitch + WarpTile64.LdsmRowB(lane, rowsPitch);
        for (int w = Grid.IdxX, tiles = s.Tiles(V16Tile); w < tiles; w += Grid.DimX)
        {
            var (bi, m0, n0) = s.TileAt(w, V16Tile);
            int aBase = s.Base(bi, s.StrideA, s.OuterA), bBase = s.Base(bi, s.StrideB, s.OuterB);
            var acc = WarpTile64.Zero();
            bool inside = (bulk != 0 || plain != 0) && m0 + V16Tile <= s.M && n0 + V16Tile <= s.N;
            for (int p = 0; p < V17Stages - 1; p++)
            {
                bulkIn |= IssueStage(sh, p * bufferA, atB + p * bufferB, a, aAddress, aBase, b, bAddress, bBase, s, m0, n0, p * stageK, t, aRows, bRows,
                    bars, barsAt + p * BulkCopy.BarrierInts, inside, bulk, plain, wide) << p;
                AsyncCopy.Commit();
            }
            // As v17: stage i sits in buffer i % 3; the copies issued during it fill buffer (i + 2) % 3.
            for (int k0 = 0, cur = 0, fill = V17Stages - 1; k0 < s.K; k0 += stageK)
            {
                AsyncCopy.WaitAllButOne();
                Group.Barrier();
                if (bulk != 0 && ((bulkIn >> cur) & 1) != 0)
                {
                    // Once a wait gave up (a GPU) or the protocol broke (the emulation), the rest are not waited for.
                    if (broken == 0 && !BulkCopy.Wait(bars, barsAt + cur * BulkCopy.BarrierInts, (phases >> cur) & 1)) broken = 1;
                    phases ^= 1 << cur;
                    bulkIn &= ~(1 << cur);
                }
                int ahead = k0 + (V17Stages - 1) * stageK;
                if (ahead < s.K)
                    bulkIn |= IssueStage(sh, fill * bufferA, atB + fill * bufferB, a, aAddress, aBase, b, bAddress, bBase, s, m0, n0, ahead, t, aRows,
                        bRows, bars, barsAt + fill * BulkCopy.BarrierInts, inside, bulk, plain, wide) << fill;
                AsyncCopy.Commit();
                acc = tf32x3 != 0
                    ? WarpTile64.Stage16Tf32x3(acc, sh, cur * bufferA + ldsmA, sh.SubView(cur * bufferA + fragA), aRows, cur * bufferB + ldsmB,
                        sh.SubView(cur * bufferB + fragB), bRows, V16Pitch, scratch)
                    : ldsm != 0
                    ? WarpTile64.Stage16Ldsm(acc, sh, cur * bufferA + ldsmA, cur * bufferB + ldsmB, sh.SubView(cur * bufferB + fragB), bRows, V16Pitch, scratch,
                        rowsPitch)
                    : WarpTile64.Stage16Vector(acc, sh.SubView(cur * bufferA + fragA), sh.SubView(cur * bufferB + fragB), aRows, bRows, V16Pitch, scratch);
                // v24: the stage's second 16 values of k, 16 floats on in a row-major row, 16 rows on in a k-major tile.
                if (wide != 0)
                    acc = WarpTile64.Stage16Ldsm(acc, sh, cur * bufferA + ldsmA + V16K, cur * bufferB + ldsmB + V16K,
                        sh.SubView(cur * bufferB + fragB + (bRows != 0 ? V16K : V16K * V16Pitch)), bRows, V16Pitch, scratch, rowsPitch);
                cur = cur == V17Stages - 1 ? 0 : cur + 1;
                fill = fill == V17Stages - 1 ? 0 : fill + 1;
            }
            // v22: this thread's cp.async copies of an edge stage are ordered before the next tile's bulk copies into those bytes.
            if (bulk != 0) BulkCopy.FenceProxy();
            Group.Barrier();
            // A wait gave up, or the emulation's protocol check failed (a GPU would hang or race): a result no check accepts.
            if (broken != 0) acc = WarpTile64.Zero();
            StoreWarpTile64(c, s, pairs, cAddress, bi, m0 + wm, n0 + wn, acc);
        }
    }

    /// <summary>v19: thread t's two 16-byte copies of one operand's stage at k0 into the buffer at <paramref name="at"/>
    /// in the dynamic shared memory; zero past its rows (R of them: M or N) and past K, whose row lengths are multiples
    /// of 4, so a copy is wholly in or out. Row-major (<paramref name="rows"/>: rows along k, R x K in the source): rows
    /// t / 4 and t / 4 + 64 at k t % 4 * 4 (a warp covers 8 rows' 64 bytes). k-major (K x R in the source): k rows t / 32
    /// and t / 32 + 8 at t % 32 * 4 (a warp covers 512 contiguous bytes). <paramref name="whole"/> 1 (v23 inside a tile):
    /// every copy lies inside, so none takes the zero-fill operand; 0 wherever the entry is not v23's (so the
    /// unpredicated form folds away there).</summary>
    static void CopyVectors(ArrayView<float> sh, int at, ArrayView<float> src, long address, int srcBase, int r, int k, int r0, int k0, int t, int rows,
        int whole = 0, int rowsPitch = FragA.RowsPitch)
    {
        int first, second, slot, gap;
        bool in0, in1;
        if (rows != 0)
        {
            int row = r0 + (t >> 2), kq = k0 + (t & 3) * 4;
            (first, second, slot, gap) = (srcBase + row * k + kq, srcBase + (row + 64) * k + kq, at + (t >> 2) * rowsPitch + (t & 3) * 4, 64 * rowsPitch);
            (in0, in1) = (kq < k && row < r, kq < k && row + 64 < r);
        }
        else
        {
            int kk = k0 + (t >> 5), col = r0 + (t & 31) * 4;
            (first, second, slot, gap) = (srcBase + kk * r + col, srcBase + (kk + 8) * r + col, at + (t >> 5) * V16Pitch + (t & 31) * 4, 8 * V16Pitch);
            (in0, in1) = (kk < k && col < r, kk + 8 < k && col < r);
        }
        if (whole != 0)
        {
            AsyncCopy.VectorWhole(sh, slot, src, address, first);
            AsyncCopy.VectorWhole(sh, slot + gap, src, address, second);
        }
        else
        {
            AsyncCopy.Vector(sh, slot, src, address, first, in0);
            AsyncCopy.Vector(sh, slot + gap, src, address, second, in1);
        }
    }

    /// <summary>One stage of both operands (A's buffer at <paramref name="atA"/>, B's at <paramref name="atB"/>) as the
    /// entry's constants say. Where the whole tile (<paramref name="inside"/>) and the stage lie inside: by bulk copies
    /// (v22, v24), returning 1, so the caller waits on the buffer's barrier <paramref name="bar"/>; or by copies without
    /// the zero-fill operand (v23). Elsewhere by 16-byte cp.async copies zero-filled past the edges, returning 0.</summary>
    static int IssueStage(ArrayView<float> sh, int atA, int atB, ArrayView<float> a, long aAddress, int aBase, ArrayView<float> b, long bAddress,
        int bBase, GemmShape s, int m0, int n0, int k0, int t, int aRows, int bRows, ArrayView<int> bars, int bar, bool inside, int bulk, int plain,
        int wide)
    {
        int stageK = wide != 0 ? V24K : V16K;
        bool whole = inside && k0 + stageK <= s.K;
        if (bulk != 0 && whole)
        {
            BulkStage(sh, atA, atB, a, aAddress, aBase, b, bAddress, bBase, s, m0, n0, k0, t, aRows, bRows, bars, bar, stageK,
                wide != 0 ? FragA.RowsPitch32 : FragA.RowsPitch);
            return 1;
        }
        int unfilled = plain != 0 && whole ? 1 : 0;
        CopyStage(sh, atA, a, aAddress, aBase, s.M, s.K, m0, k0, t, aRows, wide, unfilled);
        CopyStage(sh, atB, b, bAddress, bBase, s.N, s.K, n0, k0, t, bRows, wide, unfilled);
        return 0;
    }

    /// <summary>One operand's stage by 16-byte cp.async copies: CopyVectors' 16 values of k, or for v24
    /// (<paramref name="wide"/>) its 32 as two such halves (the second 16 floats on in a row-major row, 16 rows on in a
    /// k-major tile). <paramref name="whole"/>: as CopyVectors'.</summary>
    static void CopyStage(ArrayView<float> sh, int at, ArrayView<float> src, long address, int srcBase, int r, int k, int r0, int k0, int t, int rows,
        int wide, int whole)
    {
        if (wide == 0)
        {
            CopyVectors(sh, at, src, address, srcBase, r, k, r0, k0, t, rows, whole);
            return;
        }
        CopyVectors(sh, at, src, address, srcBase, r, k, r0, k0, t, rows, whole, FragA.RowsPitch32);
        CopyVectors(sh, at + (rows != 0 ? V16K : V16K * V16Pitch), src, address, srcBase, r, k, r0, k0 + V16K, t, rows, whole, FragA.RowsPitch32);
    }

    /// <summary>v22 and v24: one stage of both operands by bulk copies, all its bytes (16 KB; v24's 32) announced on
    /// barrier <paramref name="bar"/> by thread 0. A row-major operand takes 128 copies (row u: <paramref name="stageK"/>
    /// values of k), a k-major one <paramref name="stageK"/> (k row u: 512 bytes, 128 values of m or n). Copy j goes to lane j / 8 of warp j % 8, so every warp issues its share: ptxas
    /// turns a warp's bulk copy into a loop over its copying lanes (ELECT, three moves to uniform registers, UBLKCP:
    /// 8 instructions a lane), so 18 a warp (NN: 144 copies) cost 144 instructions where v20's stage loop has 126. The
    /// tile lies inside.</summary>
    static void BulkStage(ArrayView<float> sh, int atA, int atB, ArrayView<float> a, long aAddress, int aBase, ArrayView<float> b, long bAddress,
        int bBase, GemmShape s, int m0, int n0, int k0, int t, int aRows, int bRows, ArrayView<int> bars, int bar, int stageK, int rowsPitch)
    {
        if (t == 0) BulkCopy.Expect(bars, bar, 2 * V16Tile * stageK * 4);
        int j = (t & 31) * (V16Threads / 32) + (t >> 5), copiesA = aRows != 0 ? V16Tile : stageK, copiesB = bRows != 0 ? V16Tile : stageK;
        if (j < copiesA) BulkRow(sh, atA, a, aAddress, aBase, s.M, s.K, m0, k0, j, aRows, bars, bar, stageK, rowsPitch);
        else if (j < copiesA + copiesB) BulkRow(sh, atB, b, bAddress, bBase, s.N, s.K, n0, k0, j - copiesA, bRows, bars, bar, stageK, rowsPitch);
    }

    /// <summary>v22 and v24: bulk copy u of one operand's stage (see BulkStage), into the buffer at <paramref name="at"/>
    /// in the layout CopyVectors fills: row-major rows <paramref name="rowsPitch"/> apart (<paramref name="stageK"/>
    /// floats each), k-major rows V16Pitch apart (128 floats each).</summary>
    static void BulkRow(ArrayView<float> sh, int at, ArrayView<float> src, long address, int srcBase, int r, int k, int r0, int k0, int u,
        int rows, ArrayView<int> bars, int bar, int stageK, int rowsPitch)
    {
        if (rows != 0) BulkCopy.Row(sh, at + u * rowsPitch, src, address, srcBase + (r0 + u) * k + k0, stageK, bars, bar);
        else BulkCopy.Row(sh, at + u * V16Pitch, src, address, srcBase + (k0 + u) * r + r0, V16Tile, bars, bar);
    }

    /// <summary>v9, for the CPU accelerator: each unit of work is a 4 x 8 block of C, its 32 accumulators two Block4
    /// values (columns 0-3 and 4-7), k innermost. Per step of k it reads 4 values of A and 8 of B for 32 multiply-adds,
    /// where v3 reads and writes C once per multiply-add. Blocks past the edges load the last row or column again and
    /// store only what exists.</summary>
    static void V9Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        int rowBlocks = (s.M + 3) / 4, colBlocks = (s.N + 7) / 8, units = s.Batch * rowBlocks * colBlocks, stride = Grid.DimX * Group.DimX;
        // A(i, k) = a[IndexA(i, 0) + k ak], B(k, j) = b[IndexB(0, j) + k bk]; rows and columns past the edge read the last one again.
        int ak = s.TransA == 0 ? 1 : s.M, bk = s.TransB == 0 ? s.N : 1, lastI = s.M - 1, lastJ = s.N - 1;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int jb = u % colBlocks, t = u / colBlocks, i0 = t % rowBlocks * 4, bi = t / rowBlocks, j0 = jb * 8;
            int r0 = s.IndexA(bi, i0, 0), r1 = s.IndexA(bi, XMath.Min(i0 + 1, lastI), 0);
            int r2 = s.IndexA(bi, XMath.Min(i0 + 2, lastI), 0), r3 = s.IndexA(bi, XMath.Min(i0 + 3, lastI), 0);
            int c0 = s.IndexB(bi, 0, j0), c1 = s.IndexB(bi, 0, XMath.Min(j0 + 1, lastJ)), c2 = s.IndexB(bi, 0, XMath.Min(j0 + 2, lastJ));
            int c3 = s.IndexB(bi, 0, XMath.Min(j0 + 3, lastJ)), c4 = s.IndexB(bi, 0, XMath.Min(j0 + 4, lastJ));
            int c5 = s.IndexB(bi, 0, XMath.Min(j0 + 5, lastJ)), c6 = s.IndexB(bi, 0, XMath.Min(j0 + 6, lastJ)), c7 = s.IndexB(bi, 0, XMath.Min(j0 + 7, lastJ));
            Block4 lo = default, hi = default;
            for (int k = 0, ka = 0, kb = 0; k < s.K; k++, ka += ak, kb += bk)
            {
                float a0 = a[r0 + ka], a1 = a[r1 + ka], a2 = a[r2 + ka], a3 = a[r3 + ka];
                lo = Block4.Fma(lo, a0, a1, a2, a3, b[c0 + kb], b[c1 + kb], b[c2 + kb], b[c3 + kb]);
                hi = Block4.Fma(hi, a0, a1, a2, a3, b[c4 + kb], b[c5 + kb], b[c6 + kb], b[c7 + kb]);
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                {
                    Store(c, s, bi, i0 + i, j0 + j, lo.Get(i, j));
                    Store(c, s, bi, i0 + i, j0 + 4 + j, hi.Get(i, j));
                }
        }
    }

    static void Store(ArrayView<float> c, GemmShape s, int bi, int i, int j, float acc)
    {
        if (i >= s.M || j >= s.N) return;
        int ci = s.IndexC(bi, i, j);
        c[ci] = s.Beta == 0 ? s.Alpha * acc : s.Alpha * acc + s.Beta * c[ci];
    }

    /// <summary>The tensor-core versions (tf32: opt-in by name, never tuned to, as their results differ from fp32's).</summary>
    public static bool IsTf32(GemmVersion v) => v is GemmVersion.V5Tf32 or GemmVersion.V16PipelinedTf32 or GemmVersion.V17AsyncTf32
        or GemmVersion.V18PackedTf32 or GemmVersion.V19VectorTf32 or GemmVersion.V20LdmatrixTf32 or GemmVersion.V22BulkTf32 or GemmVersion.V23PlainCopyTf32
        or GemmVersion.V24BulkK32Tf32;

    /// <summary>The versions on tensor cores: the tf32 ones and v21 (fp32 by three tf32 mma).</summary>
    public static bool UsesTensorCores(GemmVersion v) => IsTf32(v) || v == GemmVersion.V21Tf32x3;

    /// <summary>The versions staged three deep by asynchronous copies (v17-v24).</summary>
    static bool IsAsync(GemmVersion v) => v is GemmVersion.V17AsyncTf32 or GemmVersion.V18PackedTf32 || IsVector(v);

    /// <summary>The versions on 16-byte copies (v19-v24), which need VectorOperands.</summary>
    public static bool IsVector(GemmVersion v) => v is GemmVersion.V19VectorTf32 or GemmVersion.V20LdmatrixTf32 or GemmVersion.V21Tf32x3
        or GemmVersion.V22BulkTf32 or GemmVersion.V23PlainCopyTf32 or GemmVersion.V24BulkK32Tf32;

    /// <summary>The versions on sm_90 bulk copies (v22, v24).</summary>
    public static bool IsBulk(GemmVersion v) => v is GemmVersion.V22BulkTf32 or GemmVersion.V24BulkK32Tf32;

    /// <summary>The version whose kernel Run launches when asked for <paramref name="v"/>: where an operand row is not
    /// 16-byte aligned (VectorOperands) v19, v20, v22-v24 run v17 and v21 the accelerator's fp32 default (Choose), so that
    /// it stays fp32; where A is transposed (ldmatrix reads a row-major A) v20 runs v19 and v24 v22; every other version
    /// runs itself (v22 and v23 with A transposed read it as v19 does).</summary>
    public static GemmVersion Effective(Accelerator acc, GemmVersion v, ArrayView<float> a, ArrayView<float> b, GemmShape s)
        => IsVector(v) && !VectorOperands(a, b, s) ? v == GemmVersion.V21Tf32x3 ? Choose(acc, s) : GemmVersion.V17AsyncTf32
         : v == GemmVersion.V20LdmatrixTf32 && s.TransA != 0 ? GemmVersion.V19VectorTf32
         : v == GemmVersion.V24BulkK32Tf32 && s.TransA != 0 ? GemmVersion.V22BulkTf32 : v;

    /// <summary>Whether a tf32 version gives the tensor cores its operands unrounded (v17-v20: cp.async copies fp32 values,
    /// which the tensor cores read truncated to tf32); v5 and v16 round them to nearest as they stage them. (v21 splits
    /// them: its small parts are read truncated.)</summary>
    public static bool TruncatesTf32(GemmVersion v) => IsTf32(v) && IsAsync(v);

    /// <summary>Threads per group of a tensor-core version (v5: TensorCore.Threads; v16-v24: 256).</summary>
    public static int Threads(GemmVersion v) => v == GemmVersion.V5Tf32 ? TensorCore.Threads : V16Threads;

    /// <summary>Whether a version can run on this accelerator (v5 and v16-v24 need TensorCore.Runs; v22's and v24's bulk
    /// copies a CUDA card of compute capability 9.0 or newer, or the emulation on any other accelerator).</summary>
    public static bool Runs(Accelerator acc, GemmVersion v) => v switch
    {
        _ when IsBulk(v) => TensorCore.Runs(acc, Threads(v)) && PtxTarget.Reaches(acc, 9, 0),
        _ when UsesTensorCores(v) => TensorCore.Runs(acc, Threads(v)),
        _ when IsUnrolled(v) => acc.MaxNumThreadsPerGroup >= UnrolledSide * UnrolledSide,
        _ => true,
    };

    /// <summary>v12-v15, which run only in groups of 16 x 16 threads (UnrolledTiles).</summary>
    static bool IsUnrolled(GemmVersion v) => v is GemmVersion.V12Unrolled or GemmVersion.V13Unrolled4 or GemmVersion.V14Padded or GemmVersion.V15Padded4;

    /// <summary>Whether KD_KERNELS=auto tries a version here: fp32 versions that run (not v21, on the tensor cores, until a
    /// GPU has timed it), less those measured hopeless on
    /// this kind of accelerator: on the CPU accelerator v2 (its shared tiles shrink to 1 x 1 in 2-thread groups); on GPUs
    /// v3 (a row per thread: 5.3 s at 4096 on an H100), v1 and v9 (on an H100 they lost at all 8 of conv v13's GEMM shapes
    /// whose trials bench/results/h100-2026-11-26b lists, 3-36x the winner, up to 91 ms a trial).</summary>
    public static bool Tunable(Accelerator acc, GemmVersion v)
        => !UsesTensorCores(v) && Runs(acc, v)
           && (Launch.IsCpu(acc) ? v != GemmVersion.V2Tiled : v is not (GemmVersion.V1Naive or GemmVersion.V3Rows or GemmVersion.V9CpuBlocks));

    /// <summary>The side of a thread's register block for the register-tiled versions (v4, v6-v8, v10-v15; their tiles on a GPU are
    /// 16 times that), 0 for the others.</summary>
    public static int BlockRows(GemmVersion v) => v switch
    {
        GemmVersion.V4Blocked or GemmVersion.V8Vector4 or GemmVersion.V11Pipelined4 or GemmVersion.V13Unrolled4 or GemmVersion.V15Padded4 => V4Rows,
        GemmVersion.V6Blocked8 or GemmVersion.V7Vector or GemmVersion.V10Pipelined or GemmVersion.V12Unrolled or GemmVersion.V14Padded => V6Rows,
        _ => 0,
    };

    /// <summary>v9 on the CPU accelerator (measured on 2 cores: 2.6-3.5x v3 at 512^3, 64 x 25088 x 64 and 192 x 196 x 64).
    /// On GPUs the padded versions where groups of 256 threads run, else the pipelined ones with the same tiles: 64 x 64
    /// (v15, v11) where M or N is at most 64, where a 128-wide tile would be half empty, or where 128 x 128 tiles (v14,
    /// v10) would leave multiprocessors without one. On an H100 (bench/results/h100-2026-11-27/4-padded, v10-v15 in one
    /// call) this picks the fastest of the six at all 8 GEMM cases: v14 3.31 ms at 4096^3 (v12 3.42, v10 4.39), 0.07-0.23
    /// at the four Conv1x1 cases and 0.178 at Winograd's GEMM at 128 channels; v15 0.202 at fmnist's Winograd GEMM (64
    /// channels; v13 0.252, v11 0.281) and 0.022 at 256^3 (4 tiles of 128).</summary>
    public static GemmVersion Choose(Accelerator acc, GemmShape s)
    {
        if (Launch.IsCpu(acc)) return GemmVersion.V9CpuBlocks;
        bool smallTiles = Math.Min(s.M, s.N) <= 64 || s.Tiles(16 * V6Rows) < acc.NumMultiprocessors;
        return Runs(acc, GemmVersion.V14Padded)
            ? smallTiles ? GemmVersion.V15Padded4 : GemmVersion.V14Padded
            : smallTiles ? GemmVersion.V11Pipelined4 : GemmVersion.V10Pipelined;
    }

    /// <summary>Gemm.Run at <paramref name="version"/> (default: the accelerator's), as a GemmRunner.</summary>
    public static GemmRunner At(Accelerator acc, GemmVersion? version = null) => (a, b, c, s) => Run(acc, a, b, c, s, version);

    public static void Run(Accelerator acc, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, GemmVersion? version = null)
    {
        var v = version ?? Choose(acc, s);
        // Refused by the version asked for, before Effective picks the kernel that runs it here.
        if (IsBulk(v) && TensorCore.Runs(acc, Threads(v)) && !Runs(acc, v))
            throw new VersionNotApplicableException($"gemm v{(int)v} needs bulk copies (cp.async.bulk: compute capability 9.0 or newer); {acc.Name} is {((ILGPU.Runtime.Cuda.CudaAccelerator)acc).Architecture}");
        if (UsesTensorCores(v) && !Runs(acc, v)) throw TensorCore.Refusal(acc, $"gemm v{(int)v}", Threads(v));
        v = Effective(acc, v, a, b, s);
        if (v == GemmVersion.V9CpuBlocks)
        {
            var k = KernelCache.Get(acc, "gemm.v9",
                x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(V9Kernel));
            k(Launch.GridStride(acc, (long)s.Batch * s.M * s.N * Math.Max(1, s.K / 16)), a, b, c, s);
        }
        else if (v == GemmVersion.V3Rows)
        {
            var k = KernelCache.Get(acc, "gemm.v3",
                x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(V3Kernel));
            k(Launch.GridStride(acc, (long)s.Batch * s.M * s.N * Math.Max(1, s.K / 16)), a, b, c, s);
        }
        else if (v == GemmVersion.V1Naive)
        {
            var k = KernelCache.Get(acc, "gemm.v1",
                x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(V1Kernel));
            k(Launch.GridStride(acc, (long)s.Batch * s.M * s.N * Math.Max(1, s.K / 16)), a, b, c, s);
        }
        else if (v == GemmVersion.V5Tf32)
        {
            var k = KernelCache.Get(acc, "gemm.v5",
                x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>(V5Kernel));
            long tiles = s.Tiles(V5Tile);
            int grid = (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 8L);
            k(new KernelConfig(Math.Max(1, grid), V5Threads), a, b, c, s);
        }
        else if (v == GemmVersion.V16PipelinedTf32 || IsAsync(v))
        {
            string name = $"gemm v{(int)v}";
            int grid = Math.Max(1, (int)Math.Min(s.Tiles(V16Tile), Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 2L));
            int pairs = VectorC(c, s, 2) ? 1 : 0;
            if (v == GemmVersion.V16PipelinedTf32)
            {
                var entry = (Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int, long>)V16Kernel;
                KernelCache.Get(acc, "gemm.v16", x => x.LoadStreamKernel(entry, LaunchBoundsAttribute.Of(entry, x.MaxNumThreadsPerGroup)))
                    (new KernelConfig(grid, V16Threads), a, b, c, s, pairs, AsyncCopy.DeviceAddress(c));
            }
            else
            {
                var entry = v switch
                {
                    GemmVersion.V17AsyncTf32 => (Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int, long, long, long>)V17Kernel,
                    GemmVersion.V18PackedTf32 => V18Kernel,
                    GemmVersion.V20LdmatrixTf32 => s.TransB == 0 ? V20Kernel : V20BTKernel,
                    GemmVersion.V21Tf32x3 => (s.TransA, s.TransB) switch { (0, 0) => V21Kernel, (0, _) => V21BTKernel, (_, 0) => V21ATKernel, _ => V21ATBTKernel },
                    GemmVersion.V22BulkTf32 => (s.TransA, s.TransB) switch { (0, 0) => V22Kernel, (0, _) => V22BTKernel, (_, 0) => V22ATKernel, _ => V22ATBTKernel },
                    GemmVersion.V23PlainCopyTf32 => (s.TransA, s.TransB) switch { (0, 0) => V23Kernel, (0, _) => V23BTKernel, (_, 0) => V23ATKernel, _ => V23ATBTKernel },
                    GemmVersion.V24BulkK32Tf32 => s.TransB == 0 ? V24Kernel : V24BTKernel,
                    _ => (s.TransA, s.TransB) switch { (0, 0) => V19Kernel, (0, _) => V19BTKernel, (_, 0) => V19ATKernel, _ => V19ATBTKernel },
                };
                string key = IsVector(v) ? $"gemm.v{(int)v}.{(s.TransA == 0 ? "n" : "t")}{(s.TransB == 0 ? "n" : "t")}" : $"gemm.v{(int)v}";
                KernelCache.Get(acc, key, x => SharedMemoryLimit.Raise(x,
                        PtxTarget.LoadStreamKernel(x, entry, LaunchBoundsAttribute.Of(entry, x.MaxNumThreadsPerGroup)), name))
                    (new KernelConfig(grid, V16Threads, SharedMemoryConfig.RequestDynamic<Float4>(AsyncSharedFloats(v, s) / 4)), a, b, c, s, pairs,
                        AsyncCopy.DeviceAddress(a), AsyncCopy.DeviceAddress(b), AsyncCopy.DeviceAddress(c));
            }
        }
        else if (IsUnrolled(v))
        {
            if (!Runs(acc, v))
                throw new VersionNotApplicableException($"gemm v{(int)v} needs groups of {UnrolledSide * UnrolledSide} threads; {acc.Name} has groups of up to {acc.MaxNumThreadsPerGroup}");
            int rows = BlockRows(v);
            long tiles = s.Tiles(rows * UnrolledSide);
            var config = new KernelConfig(Math.Max(1, (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * (rows == V4Rows ? 16L : 8L))),
                UnrolledSide * UnrolledSide);
            if (v is GemmVersion.V12Unrolled or GemmVersion.V13Unrolled4)
            {
                var (key, entry) = v == GemmVersion.V12Unrolled
                    ? ("gemm.v12", (Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape>)V12Kernel)
                    : ("gemm.v13", V13Kernel);
                KernelCache.Get(acc, key, x => x.LoadStreamKernel(entry, LaunchBoundsAttribute.Of(entry, x.MaxNumThreadsPerGroup)))(config, a, b, c, s);
            }
            else
            {
                var (key, entry) = v == GemmVersion.V14Padded
                    ? ("gemm.v14", (Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int>)V14Kernel)
                    : ("gemm.v15", V15Kernel);
                KernelCache.Get(acc, key, x => x.LoadStreamKernel(entry, LaunchBoundsAttribute.Of(entry, x.MaxNumThreadsPerGroup)))
                    (config, a, b, c, s, VectorC(c, s) ? 1 : 0);
            }
        }
        else if (BlockRows(v) > 0)
        {
            var (key, entry) = v switch
            {
                GemmVersion.V4Blocked => ("gemm.v4", (Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int>)V4Kernel),
                GemmVersion.V6Blocked8 => ("gemm.v6", V6Kernel),
                GemmVersion.V7Vector => ("gemm.v7", V7Kernel),
                GemmVersion.V8Vector4 => ("gemm.v8", V8Kernel),
                GemmVersion.V10Pipelined => ("gemm.v10", V10Kernel),
                _ => ("gemm.v11", V11Kernel),
            };
            var k = KernelCache.Get(acc, key, x => x.LoadStreamKernel(entry, LaunchBoundsAttribute.Of(entry, x.MaxNumThreadsPerGroup)));
            int tdim = Launch.SquareSide(acc, MaxTile);
            int rows = BlockRows(v), tile = rows * tdim;
            long tiles = s.Tiles(tile);
            int grid = (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * (rows == V4Rows ? 16L : 8L));
            k(new KernelConfig(Math.Max(1, grid), tdim * tdim), a, b, c, s, tdim);
        }
        else
        {
            var k = KernelCache.Get(acc, "gemm.v2",
                x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int>(V2Kernel));
            int tile = Launch.SquareSide(acc, MaxTile);
            long tiles = s.Tiles(tile);
            int grid = (int)Math.Min(tiles, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 16L);
            k(new KernelConfig(Math.Max(1, grid), tile * tile), a, b, c, s, tile);
        }
    }

    public static KernelCost Cost(GemmShape s)
        => new(2.0 * s.Batch * s.M * s.N * s.K,
               4.0 * ((s.StrideA == 0 ? 1 : s.Batch) * (double)s.M * s.K + (s.StrideB == 0 ? 1 : s.Batch) * (double)s.K * s.N
                      + (s.Beta == 0 ? 1 : 2) * (double)s.Batch * s.M * s.N));

    public static class Reference
    {
        public static double[] Run(double[] a, double[] b, double[]? c, GemmShape s)
        {
            var r = new double[s.Batch * s.M * s.N];
            for (int bi = 0; bi < s.Batch; bi++)
            for (int i = 0; i < s.M; i++)
            for (int j = 0; j < s.N; j++)
            {
                double acc = 0;
                for (int k = 0; k < s.K; k++) acc += a[s.IndexA(bi, i, k)] * b[s.IndexB(bi, k, j)];
                r[bi * s.M * s.N + i * s.N + j] = s.Alpha * acc + (s.Beta == 0 || c == null ? 0 : s.Beta * c[s.IndexC(bi, i, j)]);
            }
            return r;
        }
    }
}
