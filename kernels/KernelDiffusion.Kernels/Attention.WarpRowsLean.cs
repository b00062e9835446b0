using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>v11, lean warp rows: v8's schedule in less shared memory, so that four groups fit a multiprocessor at
/// 64-channel heads. v8 takes 61 KB (forward) and 75 KB (key side) there: three and two groups a multiprocessor, and
/// Nsight Compute found both kernels waiting more than issuing (H200, adm64's 32x32). On an H100 or H200 four groups fit where
/// each takes 56 KB or less (228 KB a multiprocessor, 1 KB of it reserved per group); their 128 registers allow four.
/// - Forward (52.5 KB at 64 channels): one V^T buffer where v8 has two. Tile i + 1's K is read into registers during
///   tile i's scores (FetchKeyRows) and stored into the other K buffer before the tile's middle barrier; its V^T during
///   tile i's O += P V (FetchTransposed), stored into the one V^T buffer after the closing barrier. No load is waited on
///   before the product that follows it (v8 waits on both tiles' loads at the top of each tile).
/// - Key side (53.6 KB): the queries stream 16 at a time, not 32, which halves Q, dA, their transposed copies and the
///   warps' private tiles. A warp's score tile is 16 keys x 16 queries, a lane's 4 keys x 2 queries (Block4x2: one
///   LDS.128 and one LDS.64 for 8 multiply-adds in S^T and dP^T; dV and dK are v8's products over 16 queries). The next
///   tile's Q, dA, lse and delta are read into registers during this tile's products (FetchQueries).
/// Every product reads through views made once per 4 steps (RunProductBy4, RunProduct2By4), so ptxas folds the steps'
/// offsets into the loads (the forward's scores: 81 instructions per 64 FFMA, v8's 91).
/// dQ as v8 (the batched GEMM); v12 is v11 with v10's dQ kernel, its K^T tiles also read into registers a tile ahead
/// (LeanQueryGradKernel, in Attention.WarpRows.cs beside v10's).</summary>
public static partial class Attention
{
    /// <summary>Queries per streamed tile in v11's key side.</summary>
    const int LeanQueries = 16;

    /// <summary>Shared memory of v11's forward (pass 0) and key side (pass 1), in floats, at padded channels cp.
    /// Forward: Q [cp][64]; two buffers of K [cp][32]; one of V^T [32][cp + 4]; four warps' P [32][20] and row scratch
    /// [32][4]: 33.3 KB at 32 channels, 52.5 KB at 64. Key side: K, V [cp][64]; Q, dA [cp][16]; Q^T, dA^T [16][cp + 4];
    /// lse, delta [16]; four warps' P^T, then dS^T, [16][20]: 29.6 and 53.6 KB. (v12's dQ kernel takes v10's: pass 2 of
    /// WarpRowsSharedFloats.)</summary>
    public static int LeanSharedFloats(int cp, int pass) => pass == 0
        ? cp * WarpRowsBlock + 2 * cp * StreamTile + StreamTile * (cp + 4) + 4 * StreamTile * PrivatePitch + 4 * RowScratch
        : 2 * cp * WarpRowsBlock + 2 * cp * LeanQueries + 2 * LeanQueries * (cp + 4) + 2 * LeanQueries + 4 * LeanQueries * PrivatePitch;

    /// <summary>v11 forward: v8's (WarpRowsForwardKernel) with one V^T buffer and its tiles read through registers: K a
    /// tile ahead during the scores, V^T during O += P V, each stored after the product that hid its loads; two
    /// barriers a tile.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void LeanForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp)
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();
        var sh = sh4.Cast<float>();
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, r = lane >> 3, c = lane & 7, vPitch = cp + 4;
        int q = 0, k = cp * WarpRowsBlock, v = k + 2 * cp * StreamTile, p = v + StreamTile * vPitch + warp * StreamTile * PrivatePitch;
        var priv = sh4.SubView(p / 4);
        var scratch = sh4.SubView((v + StreamTile * vPitch + 4 * StreamTile * PrivatePitch + warp * RowScratch) / 4);
        var vt = sh4.SubView(v / 4 + c);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + StreamTile - 1) / StreamTile;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, t0 = (w - b * blocks) * WarpRowsBlock, tw = t0 + warp * WarpRows;
            LoadRows(qkv, sh, q, -1, s, b, 0, t0, WarpRowsBlock, cp);
            LoadRows(qkv, sh, k, -1, s, b, 1, 0, StreamTile, cp);
            LoadTransposed(qkv, sh, v, s, b, 2, 0, cp);
            Group.Barrier();
            var st = SoftmaxRows.Start();
            for (int i = 0; i < tiles; i++)
            {
                int u0 = i * StreamTile, kb = k + (i & 1) * cp * StreamTile;
                // Tile i + 1's K, read during this tile's scores and stored into the other K buffer (last read in tile
                // i - 1's scores, before its first barrier) before this tile's first barrier.
                Block4 next = default;
                if (i + 1 < tiles) next = FetchKeyRows(qkv, s, b, u0 + StreamTile, cp);
                if (tw < s.T)   // a warp past the last query only loads and meets the barriers
                {
                    var x = RunProductBy4(default, sh4.SubView((q + tw - t0) / 4 + r), WarpRowsBlock / 4, sh4.SubView(kb / 4 + c), StreamTile / 4, cp);
                    x = FoldTile(ref st, x, u0 + StreamTile > s.T, s.T - u0 - 4 * c, alpha, scratch, lane);
                    PutColumns(priv, r, c, x);
                }
                if (i + 1 < tiles) PutKeyRows(sh, k + ((i + 1) & 1) * cp * StreamTile, cp, next);
                Group.Barrier();   // this tile's V^T stored (after the last tile's closing barrier), the next K, the warp's P
                // Tile i + 1's V^T, read during this tile's O += P V and stored once every warp is past it.
                if (i + 1 < tiles) next = FetchTransposed(qkv, s, b, 2, u0 + StreamTile, cp);
                if (tw < s.T)
                {
                    if (cp > 32) RunProduct2By4(ref st.O0, ref st.O1, priv.SubView(r), PrivatePitch / 4, vt, vPitch / 4, StreamTile);
                    else st.O0 = RunProductBy4(st.O0, priv.SubView(r), PrivatePitch / 4, vt, vPitch / 4, StreamTile);
                }
                Group.Barrier();
                if (i + 1 < tiles) PutTransposed(sh, v, cp, next);
            }
            if (tw < s.T) StoreForwardRows(a, lse, s, b, tw + 4 * r, c, st, scratch, lane);
        }
    }

    /// <summary>LoadRows' loads of a 32-position K tile, into registers: this thread's position e mod 32, channels
    /// e / 32 + 4 j (j = 0..7 in C00 .. C13, 8..15 in C20 .. C33 at 64 channels).</summary>
    static Block4 FetchKeyRows(ArrayView<float> qkv, AttentionShape s, int b, int pos0, int cp)
    {
        int head = HeadAt(s, b, 1, pos0), x = Group.IdxX & (StreamTile - 1), c = Group.IdxX >> 5;
        var y = FetchChannels(qkv, head, s, x, pos0 + x < s.T, c, 4, true);
        return cp > 32 ? Join(y, FetchChannels(qkv, head, s, x, pos0 + x < s.T, c + 32, 4, true)) : y;
    }

    /// <summary>Stores FetchKeyRows' registers where LoadRows would: sh[at + c 32 + x].</summary>
    static void PutKeyRows(ArrayView<float> sh, int at, int cp, Block4 y)
    {
        int t = at + (Group.IdxX >> 5) * StreamTile + (Group.IdxX & (StreamTile - 1));
        PutChannels(sh, t, 4 * StreamTile, y, true);
        if (cp > 32) PutChannels(sh, t + 32 * StreamTile, 4 * StreamTile, High(y), true);
    }

    /// <summary>The position of a 32-position tile that LoadTransposed gives this thread: 8 (e / 32) + (e / 4) mod 8.</summary>
    static int TransposedPosition() => 8 * (Group.IdxX >> 5) + ((Group.IdxX >> 2) & 7);

    /// <summary>LoadTransposed's loads, into registers: this thread's position, channels e mod 4 + 4 j (as FetchKeyRows).</summary>
    static Block4 FetchTransposed(ArrayView<float> src, AttentionShape s, int b, int part, int pos0, int cp)
    {
        int head = HeadAt(s, b, part, pos0), x = TransposedPosition(), c = Group.IdxX & 3;
        var y = FetchChannels(src, head, s, x, pos0 + x < s.T, c, 4, true);
        return cp > 32 ? Join(y, FetchChannels(src, head, s, x, pos0 + x < s.T, c + 32, 4, true)) : y;
    }

    /// <summary>Stores FetchTransposed's registers where LoadTransposed would: sh[at + x (cp + 4) + c].</summary>
    static void PutTransposed(ArrayView<float> sh, int at, int cp, Block4 y)
    {
        int t = at + TransposedPosition() * (cp + 4) + (Group.IdxX & 3);
        PutChannels(sh, t, 4, y, true);
        if (cp > 32) PutChannels(sh, t + 32, 4, High(y), true);
    }

    /// <summary>Channels c, c + step, ... of position x of a head, into registers: 4 in C00 .. C03, and where
    /// <paramref name="eight"/> 4 more in C10 .. C13; zero where the position is not <paramref name="inside"/> T and past
    /// the head's channels. The register stages of v11's and v12's tiles are one or two of these (Join).</summary>
    static Block4 FetchChannels(ArrayView<float> src, int head, AttentionShape s, int x, bool inside, int c, int step, bool eight)
    {
        Block4 y = default;
        y.C00 = Fetch(src, head, s, c, x, inside); y.C01 = Fetch(src, head, s, c + step, x, inside);
        y.C02 = Fetch(src, head, s, c + 2 * step, x, inside); y.C03 = Fetch(src, head, s, c + 3 * step, x, inside);
        if (!eight) return y;
        y.C10 = Fetch(src, head, s, c + 4 * step, x, inside); y.C11 = Fetch(src, head, s, c + 5 * step, x, inside);
        y.C12 = Fetch(src, head, s, c + 6 * step, x, inside); y.C13 = Fetch(src, head, s, c + 7 * step, x, inside);
        return y;
    }

    /// <summary>Stores FetchChannels' registers (C00 .. C03, and C10 .. C13 where <paramref name="eight"/>) at
    /// sh[at + j step].</summary>
    static void PutChannels(ArrayView<float> sh, int at, int step, Block4 y, bool eight)
    {
        sh[at] = y.C00; sh[at + step] = y.C01; sh[at + 2 * step] = y.C02; sh[at + 3 * step] = y.C03;
        if (!eight) return;
        sh[at + 4 * step] = y.C10; sh[at + 5 * step] = y.C11; sh[at + 6 * step] = y.C12; sh[at + 7 * step] = y.C13;
    }

    /// <summary>Two FetchChannels stages in one Block4: <paramref name="low"/>'s in rows 0 and 1, <paramref name="high"/>'s
    /// in rows 2 and 3.</summary>
    static Block4 Join(Block4 low, Block4 high)
    {
        low.C20 = high.C00; low.C21 = high.C01; low.C22 = high.C02; low.C23 = high.C03;
        low.C30 = high.C10; low.C31 = high.C11; low.C32 = high.C12; low.C33 = high.C13;
        return low;
    }

    /// <summary>A joined stage's second half (rows 2 and 3) as a FetchChannels stage.</summary>
    static Block4 High(Block4 y) => new() { C00 = y.C20, C01 = y.C21, C02 = y.C22, C03 = y.C23, C10 = y.C30, C11 = y.C31, C12 = y.C32, C13 = y.C33 };

    /// <summary>v11 backward, key side: v8's (WarpRowsKeySideKernel) with the queries streaming 16 at a time. A lane holds
    /// S^T and dP^T for 4 keys x 2 queries; P^T and dS^T pass through the warp's [16][20] tile to dV += P^T dA^T and
    /// dK += dS^T Q^T (4 keys x 4 or 2 x 4 channels per lane, as v8), and dS goes to <paramref name="scores"/> for dQ.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void LeanKeySideKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, ArrayView<float> scores, AttentionShape s, int cp)
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();
        var sh2 = sh4.Cast<Float2>();
        var sh = sh4.Cast<float>();
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, r = lane >> 3, c = lane & 7, tPitch = cp + 4;
        int kk = 0, vv = cp * WarpRowsBlock, q = 2 * cp * WarpRowsBlock, g = q + cp * LeanQueries, qt = g + cp * LeanQueries,
            gt = qt + LeanQueries * tPitch, ls = gt + LeanQueries * tPitch, dl = ls + LeanQueries,
            pp = dl + LeanQueries + warp * LeanQueries * PrivatePitch;
        var pt = sh4.SubView(pp / 4);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + LeanQueries - 1) / LeanQueries;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, u0 = (w - b * blocks) * WarpRowsBlock, uw = u0 + warp * WarpRows;
            LoadRows(qkv, sh, kk, -1, s, b, 1, u0, WarpRowsBlock, cp);
            LoadRows(qkv, sh, vv, -1, s, b, 2, u0, WarpRowsBlock, cp);
            var next = FetchQueries(qkv, da, s, b, 0, cp);
            float nextLse = RowTerm(lse, s, b, 0), nextDelta = RowTerm(delta, s, b, 0);
            Block4 dv0 = default, dv1 = default, dk0 = default, dk1 = default;
            for (int i = 0; i < tiles; i++)
            {
                int t0 = i * LeanQueries;
                // The previous tile's Q, dA and row terms were last read before its closing barrier.
                PutQueries(sh, q, qt, g, gt, cp, next);
                if (Group.IdxX < LeanQueries)
                {
                    sh[ls + Group.IdxX] = nextLse;
                    sh[dl + Group.IdxX] = nextDelta;
                }
                Group.Barrier();
                if (i + 1 < tiles)   // used after this tile's products
                {
                    next = FetchQueries(qkv, da, s, b, t0 + LeanQueries, cp);
                    nextLse = RowTerm(lse, s, b, t0 + LeanQueries);
                    nextDelta = RowTerm(delta, s, b, t0 + LeanQueries);
                }
                if (uw < s.T)   // a warp past the last key only loads and meets the barriers
                {
                    var sc = RunProduct(default(Block4x2), sh4.SubView((kk + uw - u0) / 4 + r), WarpRowsBlock / 4, sh2.SubView(q / 2 + c), LeanQueries / 2, cp);
                    var dp = RunProduct(default(Block4x2), sh4.SubView((vv + uw - u0) / 4 + r), WarpRowsBlock / 4, sh2.SubView(g / 2 + c), LeanQueries / 2, cp);
                    sc = ExpColumns(sc, alpha, sh2[ls / 2 + c]);
                    dp = GradColumns(sc, dp, sh2[dl / 2 + c]);
                    PutColumns(pt, r, c, sc);
                    Warp.Barrier();
                    if (cp > 32) RunProduct2By4(ref dv0, ref dv1, pt.SubView(r), PrivatePitch / 4, sh4.SubView(gt / 4 + c), tPitch / 4, LeanQueries);
                    else dv0 = RunProductBy4(dv0, pt.SubView(r), PrivatePitch / 4, sh4.SubView(gt / 4 + c), tPitch / 4, LeanQueries);
                    Warp.Barrier();   // every lane has read P^T
                    PutColumns(pt, r, c, dp);
                    Warp.Barrier();
                    StoreScoreRows(scores, sh, pp, s, b, t0, uw, lane, LeanQueries);
                    if (cp > 32) RunProduct2By4(ref dk0, ref dk1, pt.SubView(r), PrivatePitch / 4, sh4.SubView(qt / 4 + c), tPitch / 4, LeanQueries);
                    else dk0 = RunProductBy4(dk0, pt.SubView(r), PrivatePitch / 4, sh4.SubView(qt / 4 + c), tPitch / 4, LeanQueries);
                }
                Group.Barrier();
            }
            if (uw < s.T) StoreKeyGrads(dqkv, s, b, uw + 4 * r, c, dk0, dk1, dv0, dv1, alpha);
        }
    }

    /// <summary>The next 16 queries' Q and dA, into registers: thread e takes position e mod 16 and channels e / 16 + 8 j
    /// (a warp reads two runs of 16 positions), Q's in rows 0 and 1, dA's in rows 2 and 3 (Join; j = 4..7 at 64
    /// channels only).</summary>
    static Block4 FetchQueries(ArrayView<float> qkv, ArrayView<float> da, AttentionShape s, int b, int t0, int cp)
    {
        int x = Group.IdxX & (LeanQueries - 1), c = Group.IdxX >> 4;
        bool inside = t0 + x < s.T;
        return Join(FetchChannels(qkv, HeadAt(s, b, 0, t0), s, x, inside, c, 8, cp > 32),
            FetchChannels(da, HeadAt(s, b, 3, t0), s, x, inside, c, 8, cp > 32));
    }

    /// <summary>Stores FetchQueries' registers as Q [cp][16] at q and Q^T [16][cp + 4] at qt, dA likewise at g and gt.</summary>
    static void PutQueries(ArrayView<float> sh, int q, int qt, int g, int gt, int cp, Block4 y)
    {
        int x = Group.IdxX & (LeanQueries - 1), c = Group.IdxX >> 4, rows = c * LeanQueries + x, cols = x * (cp + 4) + c;
        const int step = 8 * LeanQueries;   // 8 channels on in Q [cp][16]
        PutChannels(sh, q + rows, step, y, cp > 32);
        PutChannels(sh, qt + cols, 8, y, cp > 32);
        PutChannels(sh, g + rows, step, High(y), cp > 32);
        PutChannels(sh, gt + cols, 8, High(y), cp > 32);
    }

    /// <summary>lse or delta of query t0 + e for threads e &lt; 16 (0 past T, and for the other threads).</summary>
    static float RowTerm(ArrayView<float> terms, AttentionShape s, int b, int t0)
    {
        int e = Group.IdxX;
        return e < LeanQueries && t0 + e < s.T ? terms[b * s.T + t0 + e] : 0f;
    }

    /// <summary>c += sum over x &lt; k of A(x, 4 rows) B(x, 2 columns): an LDS.128 and an LDS.64 for 8 multiply-adds; k a
    /// multiple of 4, unrolled by hand as RunProduct.</summary>
    static Block4x2 RunProduct(Block4x2 c, ArrayView<Float4> a, int aPitch, ArrayView<Float2> b, int bPitch, int k)
    {
        for (int x = 0; x < k; x += 4)
        {
            var ax = a.SubView(x * aPitch);
            var bx = b.SubView(x * bPitch);
            c = Block4x2.Fma(c, ax[0], bx[0]);
            c = Block4x2.Fma(c, ax[aPitch], bx[bPitch]);
            c = Block4x2.Fma(c, ax[2 * aPitch], bx[2 * bPitch]);
            c = Block4x2.Fma(c, ax[3 * aPitch], bx[3 * bPitch]);
        }
        return c;
    }

    /// <summary>RunProduct with each 4 steps' loads at constant offsets from views made once per 4 steps (as
    /// RunProduct2By4), for v11's and v12's Block4 products.</summary>
    static Block4 RunProductBy4(Block4 c, ArrayView<Float4> a, int aPitch, ArrayView<Float4> b, int bPitch, int k)
    {
        for (int x = 0; x < k; x += 4)
        {
            var ax = a.SubView(x * aPitch);
            var bx = b.SubView(x * bPitch);
            c = Block4.Fma(c, ax[0], bx[0]);
            c = Block4.Fma(c, ax[aPitch], bx[bPitch]);
            c = Block4.Fma(c, ax[2 * aPitch], bx[2 * bPitch]);
            c = Block4.Fma(c, ax[3 * aPitch], bx[3 * bPitch]);
        }
        return c;
    }

    /// <summary>RunProduct2 unrolled by 4, each step's loads at constant offsets from a view made once per 4 steps (so ptxas
    /// folds them into the loads: 37 instructions per 32 multiply-adds here, against RunProduct2's 51-55); k a multiple of 4.</summary>
    static void RunProduct2By4(ref Block4 c0, ref Block4 c1, ArrayView<Float4> a, int aPitch, ArrayView<Float4> b, int bPitch, int k)
    {
        for (int x = 0; x < k; x += 4)
        {
            var ax = a.SubView(x * aPitch);
            var bx = b.SubView(x * bPitch);
            for (int j = 0; j < 4; j++)
            {
                Float4 u = ax[j * aPitch];
                c0 = Block4.Fma(c0, u, bx[j * bPitch]);
                c1 = Block4.Fma(c1, u, bx[j * bPitch + 8]);
            }
        }
    }

    /// <summary>P^T = exp(alpha S^T - lse_j), lse_j the column's (query's); queries past T as ExpColumns (Block4).</summary>
    static Block4x2 ExpColumns(Block4x2 x, float alpha, Float2 lse)
    {
        x.C00 = XMath.Exp(alpha * x.C00 - lse.X); x.C01 = XMath.Exp(alpha * x.C01 - lse.Y);
        x.C10 = XMath.Exp(alpha * x.C10 - lse.X); x.C11 = XMath.Exp(alpha * x.C11 - lse.Y);
        x.C20 = XMath.Exp(alpha * x.C20 - lse.X); x.C21 = XMath.Exp(alpha * x.C21 - lse.Y);
        x.C30 = XMath.Exp(alpha * x.C30 - lse.X); x.C31 = XMath.Exp(alpha * x.C31 - lse.Y);
        return x;
    }

    /// <summary>dS = P (dP - delta_j) entry by entry, delta_j the column's (query's).</summary>
    static Block4x2 GradColumns(Block4x2 p, Block4x2 d, Float2 e)
    {
        d.C00 = p.C00 * (d.C00 - e.X); d.C01 = p.C01 * (d.C01 - e.Y);
        d.C10 = p.C10 * (d.C10 - e.X); d.C11 = p.C11 * (d.C11 - e.Y);
        d.C20 = p.C20 * (d.C20 - e.X); d.C21 = p.C21 * (d.C21 - e.Y);
        d.C30 = p.C30 * (d.C30 - e.X); d.C31 = p.C31 * (d.C31 - e.Y);
        return d;
    }

    /// <summary>Stores a lane's 4 keys x 2 queries key-major into its warp's [16][20] tile: the Float4 of keys 4 row .. at
    /// queries 2 col and 2 col + 1.</summary>
    static void PutColumns(ArrayView<Float4> p, int row, int col, Block4x2 x)
    {
        int at = 2 * col * (PrivatePitch / 4) + row;
        p[at] = new Float4(x.C00, x.C10, x.C20, x.C30);
        p[at + PrivatePitch / 4] = new Float4(x.C01, x.C11, x.C21, x.C31);
    }
}

/// <summary>A lane's 4 x 2 register block (v11's key-side scores: 4 keys x 2 queries).</summary>
public struct Block4x2
{
    public float C00, C01, C10, C11, C20, C21, C30, C31;

    /// <summary>c += a b^T for a column a of four values and a row b of two: 8 multiply-adds.</summary>
    public static Block4x2 Fma(Block4x2 c, Float4 a, Float2 b)
    {
        c.C00 += a.X * b.X; c.C01 += a.X * b.Y;
        c.C10 += a.Y * b.X; c.C11 += a.Y * b.Y;
        c.C20 += a.Z * b.X; c.C21 += a.Z * b.Y;
        c.C30 += a.W * b.X; c.C31 += a.W * b.Y;
        return c;
    }
}
