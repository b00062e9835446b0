using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>v13: a forward whose two products run on the tensor cores as 3xTF32 (each product three tf32 mma, fp32's
/// accuracy: GEMM v21's split, TensorCore.Tf32x3.cs), the backward v11's. PyTorch's fp32 SDPA, our yardstick, does the
/// same on these cards (bench/NOTES.md, "Attention", what the yardstick runs).
/// One group of four warps per (head-batch, block of 64 queries), each warp 16 queries; keys stream in tiles of 32.
/// Per tile a warp computes its 16 x 32 scores S = Q K^T as one mma row tile (4 tiles of 8 keys; Q and K staged
/// row-major, rows along the channels, 16 channels a row as GEMM v20's stages, read by ldmatrix), reads them out of
/// the PTX registers (16 a lane), runs the online softmax on them (a row's 4 lanes combine by shfl.sync; by the
/// scratch off CUDA: TensorCore.QuadXor), rescales its
/// output, and adds P V: P's C fragment serves as the A fragment of P V unshuffled by giving the mma's k index t the
/// key 2t and k index t + 4 the key 2t + 1 (the sum over keys does not care about their order), which V's B
/// fragments follow (rows 2t and 2t + 1). The output, 16 queries x 64 channels, stays in PTX registers (mma row tiles
/// 1 and 2). Off CUDA every mma and ldmatrix is emulated (checked on the CPU). Writes a and lse as v8 and v11 do, so
/// v11's backward follows it.</summary>
public static partial class Attention
{
    /// <summary>Keys per streamed tile of v13's forward: one mma row tile's four 8-column tiles.</summary>
    const int MmaKeys = 32;

    /// <summary>Shared memory of v13's forward in floats at padded channels cp: Q [cp / 16][64][20] and K [cp / 16][32][20]
    /// (GEMM v20's row-major stages: 16 channels and 4 of padding a row), V [32][cp + 4]: 19.3 KB at 32 channels, 38.5 KB
    /// at 64 (under 48 KB: no limit to raise). v15's (<paramref name="pipelined"/>): Q as v13's, K^T and V^T [cp][32]
    /// (ColumnAt): 18 KB at 32 channels, 36 KB at 64.</summary>
    public static int Tf32x3SharedFloats(int cp, bool pipelined = false)
        => cp / 16 * WarpRowsBlock * FragA.RowsPitch + (pipelined ? 2 * cp * ColumnsPitch : cp / 16 * MmaKeys * FragA.RowsPitch + MmaKeys * (cp + 4));

    /// <summary>Floats between the channel rows of v15's streamed tiles [cp][32], unpadded: column x of row c is stored at
    /// x ^ 8 (c % 4) (ColumnAt), which keeps a run of 4 columns together (a 16-byte copy lands whole) and puts a warp's
    /// reads at (channel t, column 8 j + g) and its pairs at (channel g, columns 8 s + 2t and + 1) in 32 different banks,
    /// as a pitch of 40 would, in 20% less memory (v15's dK kernel needs it: three groups a multiprocessor).</summary>
    const int ColumnsPitch = MmaKeys;

    /// <summary>Where column x of channel row c of a v15 tile lies (floats from the tile's start): see ColumnsPitch.</summary>
    public static int ColumnAt(int c, int x) => c * ColumnsPitch + (x ^ ((c & 3) << 3));

    /// <summary>Where a lane's fragment entry of column tile j lies along its channel row t (t + 4, t + 8, t + 12: the same
    /// swizzle), after its column g: ColumnAt(t, 8 j + g) is row t's start + g + this.</summary>
    public static int FragmentColumn(int j, int t) => 8 * (j ^ t);

    /// <summary>Where a lane's pair of step s (columns 8 s + 2t and + 1) lies along its channel row g (g + 8 n: the same
    /// swizzle), after 2t: ColumnAt(g, 8 s + 2t) is row g's start + 2t + this.</summary>
    public static int PairColumn(int s, int g) => 8 * (s ^ (g & 3));

    [LaunchBounds(WarpRowsThreads, 4)]
    static void Tf32x3ForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp)
        => Tf32x3Forward(qkv, a, lse, s, cp, default, false);

    /// <summary>v15's forward: v13's with its key tiles copied by cp.async under the products, as FlashAttention-2
    /// schedules them: V's tile is copied while the scores are computed from K's, and the next K tile while the softmax
    /// and P V read V's. Two barriers a tile, as v13. The tiles are staged as the source holds them, channel rows of 32
    /// keys (K^T, V^T [cp][32], swizzled: ColumnAt), so runs of 4 keys go as 16-byte copies (where T is a multiple of 4
    /// and the source 16-byte aligned; else 4-byte copies): 4 copies a thread a tile for each, where v13 loads and stores
    /// 16 floats one by one. The mma fragments of K come by LDS (8 a step of k, conflict-free), V's pairs by 8-byte
    /// LDS.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void Tf32x3AsyncForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp, TileSources src)
        => Tf32x3Forward(qkv, a, lse, s, cp, src, true);

    /// <summary>v13's forward, or with <paramref name="pipelined"/> v15's (its tiles by cp.async from <paramref name="src"/>).</summary>
    static void Tf32x3Forward(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp, TileSources src, bool pipelined)
    {
        var sh = SharedMemory.GetDynamic<Float4>().Cast<float>();
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        WarpTile64.DeclareTf32x3();
        int warp = Warp.WarpIdx, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3, chunks = cp / 16;
        int kAt = chunks * WarpRowsBlock * FragA.RowsPitch, vAt = kAt + (pipelined ? cp * ColumnsPitch : chunks * MmaKeys * FragA.RowsPitch);
        int vPitch = cp + 4;
        // This lane's ldmatrix rows: of its warp's 16 queries (A) and of the tile's 32 keys (B), in the first chunk; in
        // v15 its K^T entry (channel t, key g) of the first chunk.
        int qRow = warp * 16 * FragA.RowsPitch + WarpTile64.LdsmRowA(lane), kRow = kAt + (pipelined ? t * ColumnsPitch + g : WarpTile64.LdsmRowB(lane));
        // This lane's V fragments: rows 2t and 2t + 1 of each 8 keys, channel g of each 8 (in v15 from V^T: channel g,
        // keys 2t and 2t + 1).
        int vLane = vAt + (pipelined ? g * ColumnsPitch + 2 * t : 2 * t * vPitch + g);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + MmaKeys - 1) / MmaKeys;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, t0 = (w - b * blocks) * WarpRowsBlock, q0 = t0 + warp * 16 + g;
            Group.Barrier();   // every warp past the last block's Q
            if (pipelined)
            {
                // Q and the first K tile, waited for at the first tile.
                CopySectors(qkv, src.Qkv, sh, 0, s, b, 0, t0, cp);
                CopyColumns(qkv, src.Qkv, sh, kAt, s, b, 1, 0, cp, src.Vector != 0);
                AsyncCopy.Commit();
            }
            else LoadSectors(qkv, sh, 0, true, s, b, 0, t0, WarpRowsBlock, cp);
            var acc = WarpTile64.Zero();
            // Rows g and g + 8 of the warp's queries: the running max of alpha S, and this lane's part of the sum.
            float m0 = float.NegativeInfinity, m1 = float.NegativeInfinity, l0 = 0f, l1 = 0f;
            for (int i = 0; i < tiles; i++)
            {
                int u0 = i * MmaKeys;
                if (pipelined)
                {
                    AsyncCopy.WaitAll();
                    Group.Barrier();   // this tile's K in place; every warp past the last tile's P V
                    CopyColumns(qkv, src.Qkv, sh, vAt, s, b, 2, u0, cp, src.Vector != 0);   // V, under the scores
                    AsyncCopy.Commit();
                }
                else
                {
                    Group.Barrier();   // every warp past the last tile's K and V
                    LoadSectors(qkv, sh, kAt, true, s, b, 1, u0, MmaKeys, cp);
                    LoadSectors(qkv, sh, vAt, false, s, b, 2, u0, MmaKeys, cp);
                    Group.Barrier();
                }
                acc = WarpTile64.ZeroScores(acc);
                for (int c = 0; c < chunks; c++)
                    acc = pipelined ? ScoresFromColumns(acc, sh, qRow + c * WarpRowsBlock * FragA.RowsPitch, kRow + 16 * c * ColumnsPitch, scratch)
                        : WarpTile64.ScoresTf32x3(acc, sh, qRow + c * WarpRowsBlock * FragA.RowsPitch, kRow + c * MmaKeys * FragA.RowsPitch, scratch);
                if (pipelined)
                {
                    AsyncCopy.WaitAll();
                    Group.Barrier();   // this tile's V in place; every warp past its scores
                    if (i + 1 < tiles)
                    {
                        CopyColumns(qkv, src.Qkv, sh, kAt, s, b, 1, u0 + MmaKeys, cp, src.Vector != 0);   // the next K, under the softmax and P V
                        AsyncCopy.Commit();
                    }
                }
                // Tile j's entries: keys u0 + 8 j + 2 t (e 0, 2) and + 1 (e 1, 3) of rows g (e 0, 1) and g + 8 (e 2, 3).
                int key = u0 + 2 * t;
                var x0 = MaskedScores(acc, 0, key, s.T, alpha);
                var x1 = MaskedScores(acc, 1, key + 8, s.T, alpha);
                var x2 = MaskedScores(acc, 2, key + 16, s.T, alpha);
                var x3 = MaskedScores(acc, 3, key + 24, s.T, alpha);
                float n0 = XMath.Max(m0, QuadMax(XMath.Max(XMath.Max(XMath.Max(x0.X, x0.Y), XMath.Max(x1.X, x1.Y)), XMath.Max(XMath.Max(x2.X, x2.Y), XMath.Max(x3.X, x3.Y))), scratch));
                float n1 = XMath.Max(m1, QuadMax(XMath.Max(XMath.Max(XMath.Max(x0.Z, x0.W), XMath.Max(x1.Z, x1.W)), XMath.Max(XMath.Max(x2.Z, x2.W), XMath.Max(x3.Z, x3.W))), scratch));
                // Every tile has a key inside T, so n0 and n1 are finite; exp(-inf - n) = 0 for the first tile and the masked keys.
                float k0 = XMath.Exp(m0 - n0), k1 = XMath.Exp(m1 - n1);
                x0 = ExpRows2(x0, n0, n1); x1 = ExpRows2(x1, n0, n1); x2 = ExpRows2(x2, n0, n1); x3 = ExpRows2(x3, n0, n1);
                l0 = k0 * l0 + x0.X + x0.Y + x1.X + x1.Y + x2.X + x2.Y + x3.X + x3.Y;
                l1 = k1 * l1 + x0.Z + x0.W + x1.Z + x1.W + x2.Z + x2.W + x3.Z + x3.W;
                (m0, m1) = (n0, n1);
                acc = WarpTile64.ScaleOutput(acc, k0, k1);
                if (pipelined)
                {
                    acc = AddColumnPairs(acc, sh, PairStep(vLane, 0), x0, cp, scratch);
                    acc = AddColumnPairs(acc, sh, PairStep(vLane, 1), x1, cp, scratch);
                    acc = AddColumnPairs(acc, sh, PairStep(vLane, 2), x2, cp, scratch);
                    acc = AddColumnPairs(acc, sh, PairStep(vLane, 3), x3, cp, scratch);
                }
                else
                {
                    acc = AddValues(acc, sh, vLane, vPitch, x0, cp, scratch);
                    acc = AddValues(acc, sh, vLane + 8 * vPitch, vPitch, x1, cp, scratch);
                    acc = AddValues(acc, sh, vLane + 16 * vPitch, vPitch, x2, cp, scratch);
                    acc = AddValues(acc, sh, vLane + 24 * vPitch, vPitch, x3, cp, scratch);
                }
            }
            l0 += TensorCore.QuadXor(l0, 1, scratch); l0 += TensorCore.QuadXor(l0, 2, scratch);
            l1 += TensorCore.QuadXor(l1, 1, scratch); l1 += TensorCore.QuadXor(l1, 2, scratch);
            StoreRowTiles(a, s.Out(b, 0, 0), s, q0, acc, 1f / l0, 1f / l1, t, cp);
            if (t == 0 && q0 < s.T) lse[b * s.T + q0] = m0 + XMath.Log(l0);
            if (t == 0 && q0 + 8 < s.T) lse[b * s.T + q0 + 8] = m1 + XMath.Log(l1);
        }
    }

    /// <summary>Copies positions pos0 .. pos0 + w - 1 (w = 32 or 64) of a part of head-batch b into shared memory, zero past
    /// T and for channels ch .. cp - 1: <paramref name="chunked"/>, as rows of 16 channels (sh[at + ((c / 16) w + x) 20 +
    /// c % 16], GEMM v20's stages, for ldmatrix), else as rows of all channels (sh[at + x (cp + 4) + c]). Thread e takes
    /// positions e % 8 + 8 (e / 32) (+ 32 for w = 64) and channels (e / 8) % 4 + 4 j: a warp reads 8 positions of 4
    /// channels, four whole 32-byte sectors, and stores them to 32 different banks in both layouts.</summary>
    static void LoadSectors(ArrayView<float> src, ArrayView<float> sh, int at, bool chunked, AttentionShape s, int b, int part, int pos0, int w, int cp)
    {
        int head = HeadAt(s, b, part, pos0), e = Group.IdxX, c0 = (e >> 3) & 3;
        for (int x = (e & 7) + 8 * (e >> 5); x < w; x += 32)
        {
            bool inside = pos0 + x < s.T;
            for (int c = c0; c < cp; c += 4)
                sh[chunked ? at + ((c >> 4) * w + x) * FragA.RowsPitch + (c & 15) : at + x * (cp + 4) + c] = Fetch(src, head, s, c, x, inside);
        }
    }

    /// <summary>LoadSectors of a block of 64 positions as 16-channel rows (chunked) by cp.async (v15), issued and not waited
    /// for: the same positions and channels, a thread's channels c, c + 4, c + 8 and c + 12 of a 16-channel row (16 bytes
    /// apart in shared memory, T floats apart in the source) as one AsyncCopy.Copies4 of 4-byte copies, zero-filled past
    /// T and past the head's channels.</summary>
    static void CopySectors(ArrayView<float> src, long address, ArrayView<float> sh, int at, AttentionShape s, int b, int part, int pos0, int cp)
    {
        int head = HeadAt(s, b, part, pos0), e = Group.IdxX, c0 = (e >> 3) & 3;
        for (int x = (e & 7) + 8 * (e >> 5); x < WarpRowsBlock; x += 32)
        {
            bool inside = pos0 + x < s.T;
            for (int c = c0; c < cp; c += 16)
                AsyncCopy.Copies4(sh, at + ((c >> 4) * WarpRowsBlock + x) * FragA.RowsPitch + (c & 15), 4, src, address, head + c * s.T + x, 4 * s.T,
                    inside ? Math.Max(0, Math.Min(4, (s.Ch - c + 3) >> 2)) : 0);
        }
    }

    /// <summary>v15's streamed tile: positions pos0 .. pos0 + 31 of a part of head-batch b by cp.async as channel rows
    /// (sh[at + ColumnAt(c, x)], x the position in the tile), zero past T and past the head's channels, issued and not waited
    /// for. Runs of 4 positions go by AsyncCopy.Run4 (one 16-byte copy where <paramref name="vector"/>, else four 4-byte
    /// copies), or by AsyncCopy.VectorWhole where every run lies inside T and the head (16-byte copies, every tile but the
    /// last where the head's channels are a multiple of 16): no zero-fill to compute. Thread e takes the run of positions
    /// 4 (e % 8) in channels e / 8 + 16 j: a warp copies 4 rows of 128 bytes (4 whole lines of the source) into 4 whole
    /// rows.</summary>
    static void CopyColumns(ArrayView<float> src, long address, ArrayView<float> sh, int at, AttentionShape s, int b, int part, int pos0, int cp, bool vector)
    {
        const int rows = WarpRowsThreads / 8;   // a multiple of 4: rows that far apart share ColumnAt's swizzle
        int c = Group.IdxX >> 3, x = 4 * (Group.IdxX & 7), inside = Math.Max(0, Math.Min(4, s.T - pos0 - x));
        int from = HeadAt(s, b, part, pos0) + c * s.T + x, slot = at + ColumnAt(c, x);
        bool whole = vector && pos0 + MmaKeys <= s.T && cp == s.Ch;
        for (; c < cp; c += rows, from += rows * s.T, slot += rows * ColumnsPitch)
        {
            if (whole) AsyncCopy.VectorWhole(sh, slot, src, address, from);
            else AsyncCopy.Run4(sh, slot, src, address, from, c < s.Ch ? inside : 0, vector);
        }
    }

    /// <summary>Row tile <paramref name="tile"/> (0 or 3) += A B over one 16-channel chunk (v15): A's 16 rows row-major
    /// (ldmatrix at <paramref name="aRow"/>, as ScoresTf32x3), B from a channel-row tile (K^T, Q^T or dA^T):
    /// <paramref name="bAt"/> the tile's row t (this lane's t) of the chunk, plus g. b0 and b1 of column tile j are the
    /// entries of channels t and t + 4 at column 8 j + g, stored 8 (j ^ t) + g along their rows (ColumnAt: rows t, t + 4,
    /// t + 8 and t + 12 share the swizzle).</summary>
    static WarpTile64 ScoresFromColumns(WarpTile64 acc, ArrayView<float> sh, int aRow, int bAt, ArrayView<float> scratch, int tile = 0)
    {
        // A view per column tile: its four reads are constant offsets from the view's start, which ptxas folds into the
        // loads (an int index plus a constant is widened after the add, so ptxas would compute each address). The column
        // tiles' views are the row's plus this lane's swizzled offsets (the same every chunk).
        int t = Warp.LaneIdx & 3;
        var row = sh.SubView(bAt);
        ArrayView<float> j0 = row.SubView(FragmentColumn(0, t)), j1 = row.SubView(FragmentColumn(1, t)),
            j2 = row.SubView(FragmentColumn(2, t)), j3 = row.SubView(FragmentColumn(3, t));
        acc = WarpTile64.ScoreStepValues(acc, sh, aRow, ColumnsB(j0, 0), ColumnsB(j1, 0), ColumnsB(j2, 0), ColumnsB(j3, 0), scratch, tile);
        const int rows8 = 8 * ColumnsPitch;
        return WarpTile64.ScoreStepValues(acc, sh, aRow + 8, ColumnsB(j0, rows8), ColumnsB(j1, rows8), ColumnsB(j2, rows8), ColumnsB(j3, rows8),
            scratch, tile);
    }

    static FragB ColumnsB(ArrayView<float> column, int row) => new() { B0 = column[row], B1 = column[row + 4 * ColumnsPitch] };

    /// <summary>Row tiles 1 and 2 += X B over one 8-row step (v15), as AddChunkRows, B from a channel-row tile (V^T, dA^T
    /// or Q^T): <paramref name="at"/> this lane's pair (channel g, columns 2t and 2t + 1 of the step: PairAt), read as one
    /// 8-byte load; channel tile n is 8 n rows on (the same swizzle).</summary>
    static WarpTile64 AddColumnPairs(WarpTile64 acc, ArrayView<float> sh, int at, Float4 x, int cp, ArrayView<float> scratch)
    {
        // The pairs as constant offsets from one view (folded into the loads, as ScoresFromColumns' reads).
        var pairs = sh.SubView(at).Cast<Float2>();
        const int tile = 4 * ColumnsPitch;   // 8 channel rows, in pairs
        var frag = new FragA { A0 = x.X, A1 = x.Z, A2 = x.Y, A3 = x.W };
        acc = WarpTile64.OutputTf32x3(acc, frag, PairAt(pairs, 0), PairAt(pairs, tile), PairAt(pairs, 2 * tile), PairAt(pairs, 3 * tile), 0, scratch);
        if (cp > 32)
            acc = WarpTile64.OutputTf32x3(acc, frag, PairAt(pairs, 4 * tile), PairAt(pairs, 5 * tile), PairAt(pairs, 6 * tile),
                PairAt(pairs, 7 * tile), 1, scratch);
        return acc;
    }

    /// <summary>Where this lane's pair of step <paramref name="s"/> (columns 8 s + 2t and + 1 of channel row g) lies, from
    /// <paramref name="gRow"/>: the tile's row g plus 2t (PairColumn).</summary>
    static int PairStep(int gRow, int s) => gRow + PairColumn(s, Warp.LaneIdx >> 2);

    /// <summary>Pair i of a view of pairs, as B0 and B1 (one 8-byte load).</summary>
    static FragB PairAt(ArrayView<Float2> pairs, int i)
    {
        var v = pairs[i];
        return new() { B0 = v.X, B1 = v.Y };
    }

    /// <summary>Entry i &lt; 32 of the tile's per-query values from t0 (lse or delta of head-batch b) into sh[at + i] by
    /// cp.async (v15), 0 past T: threads 0-31 copy one each.</summary>
    static void CopyRowValues(ArrayView<float> src, long address, ArrayView<float> sh, int at, AttentionShape s, int b, int t0)
    {
        int e = Group.IdxX;
        if (e < MmaKeys) AsyncCopy.Single(sh, at + e, src, address, b * s.T + t0 + e, t0 + e < s.T);
    }

    /// <summary>Score tile j's four entries of this lane (rows g, g, g + 8, g + 8 at keys <paramref name="key"/>,
    /// key + 1, key, key + 1) times alpha, -inf at keys past T.</summary>
    static Float4 MaskedScores(WarpTile64 acc, int j, int key, int tokens, float alpha)
    {
        bool even = key < tokens, odd = key + 1 < tokens;
        return new Float4(even ? alpha * acc.Get(0, j, 0) : float.NegativeInfinity, odd ? alpha * acc.Get(0, j, 1) : float.NegativeInfinity,
            even ? alpha * acc.Get(0, j, 2) : float.NegativeInfinity, odd ? alpha * acc.Get(0, j, 3) : float.NegativeInfinity);
    }

    /// <summary>The largest of a value over the four lanes of a row (lanes 4 g .. 4 g + 3).</summary>
    static float QuadMax(float x, ArrayView<float> scratch)
    {
        x = XMath.Max(x, TensorCore.QuadXor(x, 1, scratch));
        return XMath.Max(x, TensorCore.QuadXor(x, 2, scratch));
    }

    /// <summary>exp(x - n) of a tile's entries, n0 for row g's (X, Y), n1 for row g + 8's (Z, W).</summary>
    static Float4 ExpRows2(Float4 x, float n0, float n1)
        => new(XMath.Exp(x.X - n0), XMath.Exp(x.Y - n0), XMath.Exp(x.Z - n1), XMath.Exp(x.W - n1));

    /// <summary>Output += P V over one 8-key score tile: <paramref name="p"/> this lane's P entries (rows g, g, g + 8, g + 8
    /// at keys 2t, 2t + 1, 2t, 2t + 1) as the A fragment (a0 = row g key 2t, a1 = row g + 8 key 2t, a2 = row g key 2t + 1,
    /// a3 = row g + 8 key 2t + 1: the mma's k index t names key 2t, t + 4 key 2t + 1), V's rows 2t and 2t + 1 as b0 and
    /// b1 (<paramref name="v"/>: row 2t, channel g in the shared V tile) for each 8-channel tile.</summary>
    static WarpTile64 AddValues(WarpTile64 acc, ArrayView<float> sh, int v, int pitch, Float4 p, int cp, ArrayView<float> scratch)
    {
        var frag = new FragA { A0 = p.X, A1 = p.Z, A2 = p.Y, A3 = p.W };
        ArrayView<float> r0 = sh.SubView(v), r1 = sh.SubView(v + pitch);   // rows 2t and 2t + 1: constant offsets from here
        acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(r0, r1, 0), ValueRows(r0, r1, 8), ValueRows(r0, r1, 16), ValueRows(r0, r1, 24), 0, scratch);
        if (cp > 32)
            acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(r0, r1, 32), ValueRows(r0, r1, 40), ValueRows(r0, r1, 48), ValueRows(r0, r1, 56), 1,
                scratch);
        return acc;
    }

    /// <summary>b0 and b1 from two rows' views at the same offset (a constant where the caller's is: folded into the
    /// loads, as v15's reads).</summary>
    static FragB ValueRows(ArrayView<float> row0, ArrayView<float> row1, int at) => new() { B0 = row0[at], B1 = row1[at] };

    /// <summary>Row tiles 1 and 2 (a warp's 16 rows x 64 channels) of a lane, into dst [ch][T] from <paramref name="head"/>:
    /// its rows q0 (= the block's first + 16 warp + g, times r0) and q0 + 8 (times r1) at its channels 8 j + 2t and + 1 of
    /// each tile (the forward's a = O / l; the key side's dK and dV).</summary>
    static void StoreRowTiles(ArrayView<float> dst, int head, AttentionShape s, int q0, WarpTile64 acc, float r0, float r1, int t, int cp)
    {
        int c = 2 * t;
        StoreOutputTile(dst, head, s, q0, c, acc, 1, 0, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 8, acc, 1, 1, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 16, acc, 1, 2, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 24, acc, 1, 3, r0, r1);
        if (cp <= 32) return;
        StoreOutputTile(dst, head, s, q0, c + 32, acc, 2, 0, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 40, acc, 2, 1, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 48, acc, 2, 2, r0, r1);
        StoreOutputTile(dst, head, s, q0, c + 56, acc, 2, 3, r0, r1);
    }

    /// <summary>Mma tile (i, j)'s four outputs of this lane: channels c and c + 1 of rows q0 (times r0) and q0 + 8 (r1).</summary>
    static void StoreOutputTile(ArrayView<float> a, int head, AttentionShape s, int q0, int c, WarpTile64 acc, int i, int j, float r0, float r1)
    {
        if (q0 < s.T)
        {
            if (c < s.Ch) a[head + c * s.T + q0] = r0 * acc.Get(i, j, 0);
            if (c + 1 < s.Ch) a[head + (c + 1) * s.T + q0] = r0 * acc.Get(i, j, 1);
        }
        if (q0 + 8 < s.T)
        {
            if (c < s.Ch) a[head + c * s.T + q0 + 8] = r1 * acc.Get(i, j, 2);
            if (c + 1 < s.Ch) a[head + (c + 1) * s.T + q0 + 8] = r1 * acc.Get(i, j, 3);
        }
    }

    // ---- v14's key side: two kernels on the tensor cores (v15: their tiles by cp.async) ----

    /// <summary>Shared memory of v14's key-side kernels in floats at padded channels cp: K (and, <paramref name="values"/>,
    /// V) [cp / 16][64][20] for the block's keys, Q and dA [cp / 16][32][20] for the tile's queries, lse and delta [32]:
    /// 40.3 KB (dV) and 60.3 KB (dK and dS) at 64 channels, 20.3 and 30.3 KB at 32. v15's (<paramref name="pipelined"/>)
    /// streamed tiles are channel rows (Q^T and dA^T [cp][32]), and its dK kernel has a second Q^T tile and lse: 36.1 KB
    /// (dV) and 64.4 KB (dK) at 64 channels, 18.1 and 32.4 KB at 32. With the 6 KB of static shared memory every
    /// tensor-core kernel carries on CUDA (TensorCore.Scratch) and the 1 KB the driver keeps per group, three dK groups
    /// take 214 KB of a multiprocessor's 228, as v14's take 202.</summary>
    public static int Tf32x3KeySideFloats(int cp, bool values, bool pipelined = false)
    {
        int block = cp / 16 * (values ? 2 : 1) * WarpRowsBlock * FragA.RowsPitch;
        if (!pipelined) return block + cp / 16 * 2 * MmaKeys * FragA.RowsPitch + 2 * MmaKeys;
        int tiles = values ? 3 : 2;
        return block + tiles * cp * ColumnsPitch + (values ? 3 : 1) * MmaKeys;
    }

    /// <summary>What v15's cp.async copies need from the host: its sources' device addresses (AsyncCopy.DeviceAddress), and
    /// Vector 1 where runs of 4 positions may go as 16-byte copies (T a multiple of 4, the sources 16-byte aligned).</summary>
    public struct TileSources
    {
        public long Qkv, Da, Lse, Delta;
        public int Vector;
    }

    static TileSources SourcesOf(AttentionShape s, ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta)
    {
        var src = new TileSources { Qkv = AsyncCopy.DeviceAddress(qkv) };
        if (da.Length > 0) (src.Da, src.Lse, src.Delta) = (AsyncCopy.DeviceAddress(da), AsyncCopy.DeviceAddress(lse), AsyncCopy.DeviceAddress(delta));
        src.Vector = s.T % 4 == 0 && src.Qkv % 16 == 0 && src.Da % 16 == 0 ? 1 : 0;
        return src;
    }

    /// <summary>v14's key side (v15's with <paramref name="pipelined"/>): dV by Tf32x3ValueGradKernel, then dK and dS by
    /// Tf32x3KeyGradKernel (which recomputes S^T: five products where v11's one kernel computes four, since one kernel
    /// holding dV and dK beside S^T and dP^T would need 96 accumulators a lane).</summary>
    static void Tf32x3KeySide(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse,
        ArrayView<float> delta, ArrayView<float> dqkv, ArrayView<float> scores, bool pipelined)
    {
        int cp = WarpRowsChannels(s.Ch);
        var values = WarpRowsLaunchFloats(acc, s, Tf32x3KeySideFloats(cp, false, pipelined));
        var keys = WarpRowsLaunchFloats(acc, s, Tf32x3KeySideFloats(cp, true, pipelined));
        if (pipelined)
        {
            var src = SourcesOf(s, qkv, da, lse, delta);
            KernelCache.Get(acc, "attention.v15.value_grad", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int, TileSources> k = Tf32x3AsyncValueGradKernel;
                return x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup));
            })(values, qkv, da, lse, dqkv, s, cp, src);
            KernelCache.Get(acc, "attention.v15.key_grad", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int, TileSources> k
                    = Tf32x3AsyncKeyGradKernel;
                return SharedMemoryLimit.Raise(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), "attention v15's key side");
            })(keys, qkv, da, lse, delta, dqkv, scores, s, cp, src);
            return;
        }
        KernelCache.Get(acc, "attention.v14.value_grad", x =>
        {
            Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k = Tf32x3ValueGradKernel;
            return x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup));
        })(values, qkv, da, lse, dqkv, s, cp);
        KernelCache.Get(acc, "attention.v14.key_grad", x =>
        {
            Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k
                = Tf32x3KeyGradKernel;
            return SharedMemoryLimit.Raise(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), "attention v14's key side");
        })(keys, qkv, da, lse, delta, dqkv, scores, s, cp);
    }

    [LaunchBounds(WarpRowsThreads, 4)]
    static void Tf32x3ValueGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> dqkv, AttentionShape s, int cp)
        => Tf32x3ValueGrad(qkv, da, lse, dqkv, s, cp, default, false);

    /// <summary>v15's dV kernel: v14's with its query tiles copied by cp.async under the products: the tile's dA and lse
    /// while S^T is computed from its Q, the next tile's Q while P^T and dV read dA. Q^T and dA^T are staged as channel rows,
    /// as v15's forward stages K and V.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void Tf32x3AsyncValueGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> dqkv, AttentionShape s, int cp,
        TileSources src)
        => Tf32x3ValueGrad(qkv, da, lse, dqkv, s, cp, src, true);

    /// <summary>dV = P^T dA: one group per (head-batch, block of 64 keys), each warp 16 keys; the queries stream in tiles
    /// of 32 (Q, dA and lse staged). Per tile a warp computes S^T = K Q^T (row tile 0, as the forward's scores with K in
    /// Q's place), P^T = exp(alpha S^T - lse) and dV += P^T dA (row tiles 1 and 2, as the forward's P V, dA's rows read
    /// from its 16-channel rows). Queries past T need no mask: their Q and dA rows are zero and their lse 0, so P = 1
    /// meets a zero dA row. With <paramref name="pipelined"/> (v15) the tiles come by cp.async from <paramref name="src"/>.</summary>
    static void Tf32x3ValueGrad(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> dqkv, AttentionShape s, int cp,
        TileSources src, bool pipelined)
    {
        var sh = SharedMemory.GetDynamic<Float4>().Cast<float>();
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        WarpTile64.DeclareTf32x3();
        int warp = Warp.WarpIdx, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3, chunks = cp / 16;
        int tile = pipelined ? cp * ColumnsPitch : chunks * MmaKeys * FragA.RowsPitch;
        int qAt = chunks * WarpRowsBlock * FragA.RowsPitch, gAt = qAt + tile, lsAt = gAt + tile;
        // This lane's ldmatrix rows of its warp's 16 keys (A) and of the tile's 32 queries (B); in v15 its Q^T entry
        // (channel t, query g).
        int kRow = warp * 16 * FragA.RowsPitch + WarpTile64.LdsmRowA(lane), qRow = qAt + (pipelined ? t * ColumnsPitch + g : WarpTile64.LdsmRowB(lane));
        // This lane's dA fragments: rows (queries) 2t and 2t + 1 of each 8, channel g of each 8 (in v15 the pair at
        // channel g, queries 2t and 2t + 1 of dA^T).
        int gLane = gAt + (pipelined ? g * ColumnsPitch + 2 * t : 2 * t * FragA.RowsPitch + g);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + MmaKeys - 1) / MmaKeys;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, u0 = (w - b * blocks) * WarpRowsBlock;
            Group.Barrier();   // every warp past the last block's K
            if (pipelined)
            {
                // K and the first Q tile, waited for at the first tile.
                CopySectors(qkv, src.Qkv, sh, 0, s, b, 1, u0, cp);
                CopyColumns(qkv, src.Qkv, sh, qAt, s, b, 0, 0, cp, src.Vector != 0);
                AsyncCopy.Commit();
            }
            else LoadSectors(qkv, sh, 0, true, s, b, 1, u0, WarpRowsBlock, cp);
            var acc = WarpTile64.Zero();
            for (int i = 0; i < tiles; i++)
            {
                int t0 = i * MmaKeys;
                if (pipelined)
                {
                    AsyncCopy.WaitAll();
                    Group.Barrier();   // this tile's Q in place; every warp past the last tile's dA and lse
                    CopyColumns(da, src.Da, sh, gAt, s, b, 3, t0, cp, src.Vector != 0);   // dA and lse, under S^T
                    CopyRowValues(lse, src.Lse, sh, lsAt, s, b, t0);
                    AsyncCopy.Commit();
                }
                else
                {
                    Group.Barrier();   // every warp past the last tile's Q, dA and lse
                    LoadQueryTile(qkv, da, lse, sh, qAt, gAt, lsAt, s, b, t0, cp);
                    Group.Barrier();
                }
                acc = WarpTile64.ZeroScores(acc);
                for (int c = 0; c < chunks; c++)
                    acc = pipelined ? ScoresFromColumns(acc, sh, kRow + c * WarpRowsBlock * FragA.RowsPitch, qRow + 16 * c * ColumnsPitch, scratch)
                        : WarpTile64.ScoresTf32x3(acc, sh, kRow + c * WarpRowsBlock * FragA.RowsPitch, qRow + c * MmaKeys * FragA.RowsPitch, scratch);
                if (pipelined)
                {
                    AsyncCopy.WaitAll();
                    Group.Barrier();   // this tile's dA and lse in place; every warp past its S^T
                    if (i + 1 < tiles)
                    {
                        CopyColumns(qkv, src.Qkv, sh, qAt, s, b, 0, t0 + MmaKeys, cp, src.Vector != 0);   // the next Q, under P^T and dV
                        AsyncCopy.Commit();
                    }
                }
                // This lane's queries' lse (queries 8 j + 2t, + 1 of the tile), as constant offsets from one view.
                var ls = sh.SubView(lsAt + 2 * t);
                // Each step's P^T as soon as it is added (v14's order: fewer values live at once).
                acc = AddQueryStep(acc, sh, gLane, 0, ExpColumns2(acc, 0, alpha, ls[0], ls[1]), cp, pipelined, scratch);
                acc = AddQueryStep(acc, sh, gLane, 1, ExpColumns2(acc, 1, alpha, ls[8], ls[9]), cp, pipelined, scratch);
                acc = AddQueryStep(acc, sh, gLane, 2, ExpColumns2(acc, 2, alpha, ls[16], ls[17]), cp, pipelined, scratch);
                acc = AddQueryStep(acc, sh, gLane, 3, ExpColumns2(acc, 3, alpha, ls[24], ls[25]), cp, pipelined, scratch);
            }
            StoreRowTiles(dqkv, s.Qkv(b, 2, 0, 0), s, u0 + warp * 16 + g, acc, 1f, 1f, t, cp);
        }
    }

    [LaunchBounds(WarpRowsThreads, 3)]
    static void Tf32x3KeyGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dqkv,
        ArrayView<float> scores, AttentionShape s, int cp)
        => Tf32x3KeyGrad(qkv, da, lse, delta, dqkv, scores, s, cp, default, false);

    /// <summary>v15's dK kernel: v14's with its query tiles copied by cp.async under the products, staged as channel rows
    /// (Q^T, dA^T) as in v15's dV kernel. Q is read from the first product to the last, so its tiles (and lse) alternate
    /// between two buffers, the next copied during the whole tile; dA and delta are copied while S^T is computed, and
    /// waited for before dP^T.</summary>
    [LaunchBounds(WarpRowsThreads, 3)]
    static void Tf32x3AsyncKeyGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dqkv,
        ArrayView<float> scores, AttentionShape s, int cp, TileSources src)
        => Tf32x3KeyGrad(qkv, da, lse, delta, dqkv, scores, s, cp, src, true);

    /// <summary>dK = alpha dS^T Q and dS [N*H, T, T] (for dQ's GEMM): as Tf32x3ValueGrad, with V staged beside K;
    /// per query tile S^T (row tile 0) and dP^T = V dA^T (row tile 3), dS^T = P^T (dP^T - delta), stored, and dK += dS^T Q
    /// (row tiles 1 and 2). Queries past T: P = 1 and dS = 0 (zero dA rows, delta 0), not stored. With
    /// <paramref name="pipelined"/> (v15) the tiles come by cp.async from <paramref name="src"/>.</summary>
    static void Tf32x3KeyGrad(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dqkv,
        ArrayView<float> scores, AttentionShape s, int cp, TileSources src, bool pipelined)
    {
        var sh = SharedMemory.GetDynamic<Float4>().Cast<float>();
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        WarpTile64.DeclareTf32x3();
        int warp = Warp.WarpIdx, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3, chunks = cp / 16;
        int tile = pipelined ? cp * ColumnsPitch : chunks * MmaKeys * FragA.RowsPitch;
        int vAt = chunks * WarpRowsBlock * FragA.RowsPitch, qAt = 2 * vAt, gAt = qAt + tile, lsAt = gAt + tile, dlAt = lsAt + MmaKeys;
        // v15's second Q^T tile and lse, after delta.
        int q1At = dlAt + MmaKeys, ls1At = q1At + tile;
        // This lane's B entries of the tile's queries for S^T (from Q) and dP^T (from dA): ldmatrix rows, in v15 the
        // entries (channel t, query g) of Q^T and dA^T; and its Q fragments for dK: rows (queries) 2t and 2t + 1 of each
        // 8, channel g of each 8 (in v15 the pair at channel g, queries 2t and 2t + 1 of Q^T). Q's from the tile's buffer.
        int bIn = pipelined ? t * ColumnsPitch + g : WarpTile64.LdsmRowB(lane), qLaneIn = pipelined ? g * ColumnsPitch + 2 * t : 2 * t * FragA.RowsPitch + g;
        int kRow = warp * 16 * FragA.RowsPitch + WarpTile64.LdsmRowA(lane), gRow = gAt + bIn;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + MmaKeys - 1) / MmaKeys;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, u0 = (w - b * blocks) * WarpRowsBlock, key0 = u0 + warp * 16 + g;
            Group.Barrier();   // every warp past the last block's K and V
            if (pipelined)
            {
                // K, V and the first Q tile and lse, waited for at the first tile.
                CopySectors(qkv, src.Qkv, sh, 0, s, b, 1, u0, cp);
                CopySectors(qkv, src.Qkv, sh, vAt, s, b, 2, u0, cp);
                CopyColumns(qkv, src.Qkv, sh, qAt, s, b, 0, 0, cp, src.Vector != 0);
                CopyRowValues(lse, src.Lse, sh, lsAt, s, b, 0);
                AsyncCopy.Commit();
            }
            else
            {
                LoadSectors(qkv, sh, 0, true, s, b, 1, u0, WarpRowsBlock, cp);
                LoadSectors(qkv, sh, vAt, true, s, b, 2, u0, WarpRowsBlock, cp);
            }
            var acc = WarpTile64.Zero();
            for (int i = 0; i < tiles; i++)
            {
                int t0 = i * MmaKeys;
                bool second = pipelined && (i & 1) != 0;
                int qCur = second ? q1At : qAt, lsCur = second ? ls1At : lsAt;
                if (pipelined)
                {
                    AsyncCopy.WaitAll();
                    Group.Barrier();   // this tile's Q and lse in place; every warp past the last tile (its dA, delta, Q buffer)
                    CopyColumns(da, src.Da, sh, gAt, s, b, 3, t0, cp, src.Vector != 0);   // dA and delta, under S^T
                    CopyRowValues(delta, src.Delta, sh, dlAt, s, b, t0);
                    AsyncCopy.Commit();
                    if (i + 1 < tiles)
                    {
                        // The next Q and lse into the other buffer, under this whole tile.
                        CopyColumns(qkv, src.Qkv, sh, second ? qAt : q1At, s, b, 0, t0 + MmaKeys, cp, src.Vector != 0);
                        CopyRowValues(lse, src.Lse, sh, second ? lsAt : ls1At, s, b, t0 + MmaKeys);
                    }
                    AsyncCopy.Commit();
                }
                else
                {
                    Group.Barrier();   // every warp past the last tile's Q, dA, lse and delta
                    LoadQueryTile(qkv, da, lse, sh, qAt, gAt, lsAt, s, b, t0, cp);
                    if (Group.IdxX < MmaKeys) sh[dlAt + Group.IdxX] = t0 + Group.IdxX < s.T ? delta[b * s.T + t0 + Group.IdxX] : 0f;
                    Group.Barrier();
                }
                acc = WarpTile64.ZeroScores(acc);
                acc = WarpTile64.ZeroScores(acc, 3);
                if (pipelined)
                {
                    for (int c = 0; c < chunks; c++)
                        acc = ScoresFromColumns(acc, sh, kRow + c * WarpRowsBlock * FragA.RowsPitch, qCur + bIn + 16 * c * ColumnsPitch, scratch);
                    AsyncCopy.WaitAllButOne();
                    Group.Barrier();   // this tile's dA and delta in place (the next Q may still be on its way)
                    for (int c = 0; c < chunks; c++)
                        acc = ScoresFromColumns(acc, sh, vAt + kRow + c * WarpRowsBlock * FragA.RowsPitch, gRow + 16 * c * ColumnsPitch, scratch, 3);
                }
                else
                    for (int c = 0; c < chunks; c++)
                    {
                        acc = WarpTile64.ScoresTf32x3(acc, sh, kRow + c * WarpRowsBlock * FragA.RowsPitch, qAt + bIn + c * MmaKeys * FragA.RowsPitch, scratch);
                        acc = WarpTile64.ScoresTf32x3(acc, sh, vAt + kRow + c * WarpRowsBlock * FragA.RowsPitch, gRow + c * MmaKeys * FragA.RowsPitch, scratch, 3);
                    }
                int col = 2 * t;   // this lane's queries 8 j + 2t, + 1 of the tile
                ArrayView<float> ls = sh.SubView(lsCur + col), dl = sh.SubView(dlAt + col);
                var d0 = ScoreGrads(acc, 0, alpha, ls, dl);
                var d1 = ScoreGrads(acc, 1, alpha, ls, dl);
                var d2 = ScoreGrads(acc, 2, alpha, ls, dl);
                var d3 = ScoreGrads(acc, 3, alpha, ls, dl);
                StoreScoreTile(scores, s, b, t0 + col, key0, d0);
                StoreScoreTile(scores, s, b, t0 + col + 8, key0, d1);
                StoreScoreTile(scores, s, b, t0 + col + 16, key0, d2);
                StoreScoreTile(scores, s, b, t0 + col + 24, key0, d3);
                acc = AddQueryRows(acc, sh, qCur + qLaneIn, d0, d1, d2, d3, cp, pipelined, scratch);
            }
            StoreRowTiles(dqkv, s.Qkv(b, 1, 0, 0), s, key0, acc, alpha, alpha, t, cp);
        }
    }

    /// <summary>The tile's 32 queries from t0: Q and dA as 16-channel rows at qAt and gAt, lse at lsAt (0 past T).</summary>
    static void LoadQueryTile(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> sh, int qAt, int gAt, int lsAt,
        AttentionShape s, int b, int t0, int cp)
    {
        LoadSectors(qkv, sh, qAt, true, s, b, 0, t0, MmaKeys, cp);
        LoadSectors(da, sh, gAt, true, s, b, 3, t0, MmaKeys, cp);
        if (Group.IdxX < MmaKeys) sh[lsAt + Group.IdxX] = t0 + Group.IdxX < s.T ? lse[b * s.T + t0 + Group.IdxX] : 0f;
    }

    /// <summary>P^T = exp(alpha S^T - lse) of score tile j's four entries of this lane (keys g, g, g + 8, g + 8 at queries
    /// 2t, 2t + 1, 2t, 2t + 1 of the tile's 8, whose lse are <paramref name="lse0"/> and <paramref name="lse1"/>).</summary>
    static Float4 ExpColumns2(WarpTile64 acc, int j, float alpha, float lse0, float lse1)
        => new(XMath.Exp(alpha * acc.Get(0, j, 0) - lse0), XMath.Exp(alpha * acc.Get(0, j, 1) - lse1),
            XMath.Exp(alpha * acc.Get(0, j, 2) - lse0), XMath.Exp(alpha * acc.Get(0, j, 3) - lse1));

    /// <summary>dS^T = P^T (dP^T - delta) of score tile j's entries (as ExpColumns2; dP^T in row tile 3), the queries' lse
    /// and delta at ls[8 j], ls[8 j + 1] and dl[8 j], dl[8 j + 1] (constant offsets, folded into the loads).</summary>
    static Float4 ScoreGrads(WarpTile64 acc, int j, float alpha, ArrayView<float> ls, ArrayView<float> dl)
    {
        var p = ExpColumns2(acc, j, alpha, ls[8 * j], ls[8 * j + 1]);
        float e0 = dl[8 * j], e1 = dl[8 * j + 1];
        return new(p.X * (acc.Get(3, j, 0) - e0), p.Y * (acc.Get(3, j, 1) - e1), p.Z * (acc.Get(3, j, 2) - e0), p.W * (acc.Get(3, j, 3) - e1));
    }

    /// <summary>A lane's dS^T entries into dS [N*H, T, T] (row: query, column: key): queries q and q + 1, keys key and
    /// key + 8 (X: q, key; Y: q + 1, key; Z: q, key + 8; W: q + 1, key + 8), inside T only.</summary>
    static void StoreScoreTile(ArrayView<float> scores, AttentionShape s, int b, int q, int key, Float4 d)
    {
        int at = (b * s.T + q) * s.T + key;
        if (q < s.T)
        {
            if (key < s.T) scores[at] = d.X;
            if (key + 8 < s.T) scores[at + 8] = d.Z;
        }
        if (q + 1 < s.T)
        {
            if (key < s.T) scores[at + s.T] = d.Y;
            if (key + 8 < s.T) scores[at + s.T + 8] = d.W;
        }
    }

    /// <summary>Row tiles 1 and 2 += X R over a tile's 32 rows of R (queries: dA in dV, Q in dK), four steps of 8 with
    /// <paramref name="x0"/>..x3 the steps' entries of this lane (AddQueryStep).</summary>
    static WarpTile64 AddQueryRows(WarpTile64 acc, ArrayView<float> sh, int at, Float4 x0, Float4 x1, Float4 x2, Float4 x3, int cp, bool columns,
        ArrayView<float> scratch)
    {
        acc = AddQueryStep(acc, sh, at, 0, x0, cp, columns, scratch);
        acc = AddQueryStep(acc, sh, at, 1, x1, cp, columns, scratch);
        acc = AddQueryStep(acc, sh, at, 2, x2, cp, columns, scratch);
        return AddQueryStep(acc, sh, at, 3, x3, cp, columns, scratch);
    }

    /// <summary>Step <paramref name="s"/> (rows 8 s .. 8 s + 7) of AddQueryRows: AddChunkRows from 16-channel rows (v14;
    /// <paramref name="at"/> this lane's row 2t, channel g of the tile), or AddColumnPairs from channel rows (v15,
    /// <paramref name="columns"/>; at the tile's row g plus 2t: PairStep).</summary>
    static WarpTile64 AddQueryStep(WarpTile64 acc, ArrayView<float> sh, int at, int s, Float4 x, int cp, bool columns, ArrayView<float> scratch)
        => columns ? AddColumnPairs(acc, sh, PairStep(at, s), x, cp, scratch) : AddChunkRows(acc, sh, at + 8 * s * FragA.RowsPitch, x, cp, scratch);

    /// <summary>Row tiles 1 and 2 += X^T R over one 8-row step: <paramref name="x"/> this lane's entries of an 8-column score
    /// tile (rows g, g, g + 8, g + 8 at columns 2t, 2t + 1, 2t, 2t + 1) as the A fragment (k index t for column 2t, t + 4
    /// for 2t + 1, as the forward's P V), R's rows 2t and 2t + 1 as b0 and b1, read from its 16-channel rows
    /// (<paramref name="at"/>: row 2t, channel g; channel 8 n is chunk n / 2, column 8 (n % 2)).</summary>
    static WarpTile64 AddChunkRows(WarpTile64 acc, ArrayView<float> sh, int at, Float4 x, int cp, ArrayView<float> scratch)
    {
        const int chunk = MmaKeys * FragA.RowsPitch;
        var frag = new FragA { A0 = x.X, A1 = x.Z, A2 = x.Y, A3 = x.W };
        ArrayView<float> r0 = sh.SubView(at), r1 = sh.SubView(at + FragA.RowsPitch);
        acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(r0, r1, 0), ValueRows(r0, r1, 8), ValueRows(r0, r1, chunk), ValueRows(r0, r1, chunk + 8), 0,
            scratch);
        if (cp > 32)
            acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(r0, r1, 2 * chunk), ValueRows(r0, r1, 2 * chunk + 8), ValueRows(r0, r1, 3 * chunk),
                ValueRows(r0, r1, 3 * chunk + 8), 1, scratch);
        return acc;
    }
}
