using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>v8, warp rows: v4's and v6's tiles, but each warp owns whole rows of every score tile (16 queries in the
/// forward, 16 keys in the key side), so the softmax's row max and sum are exchanged within the warp and P (P^T, dS^T) goes
/// through a region of shared memory only its warp reads: one group barrier per streamed tile (two in the key side)
/// where v4 has four (six at 16 x 8 groups, with the split softmax), and no barrier between a tile's products.
/// Lanes are 4 rows x 8 columns; each holds a 4 x 4 register block (Block4) of a 16 x 32 tile, and every product
/// step reads two Float4s of shared memory (LDS.128) for 16 multiply-adds: the streamed operand's transposed copy
/// (V^T in the forward; Q^T and dA^T in the key side) is stored alongside for the products over positions.
/// Heads of up to 64 channels (padded to 32 or 64); groups of 4 warps of 32 lanes (CUDA). dQ as v6: one batched GEMM
/// over the dS the key side stores. v9 is v8's forward with v6's backward. v10 is v8 with dQ = alpha dS K made by its
/// own warp-rows kernel (WarpRowsQueryGradKernel), not by the GEMM, whose 64 x 64 tiles are half empty at 32-channel
/// heads.</summary>
public static partial class Attention
{
    /// <summary>v8's groups: 4 warps of 32 lanes.</summary>
    public const int WarpRowsThreads = 128;
    const int WarpRowsBlock = 64, WarpRows = 16, StreamTile = 32;
    /// <summary>Floats between the rows of a warp's private P (or P^T, dS^T) tile [32][16 + 4]: 16-byte aligned, and the
    /// padding spreads the four lanes' Float4 stores of a column over more banks.</summary>
    const int PrivatePitch = WarpRows + 4;
    /// <summary>Floats of a warp's row scratch in the forward (AcrossRow): a Float4 per lane.</summary>
    const int RowScratch = 32 * 4;

    /// <summary>Whether v8 runs on this accelerator: 32-lane warps, groups of 128 threads.</summary>
    public static bool WarpRowsRun(Accelerator acc) => Launch.Has32LaneGroups(acc, WarpRowsThreads);

    /// <summary>Whether a warp-rows version's forward and key side fit the shared memory a group may have here
    /// (SharedMemoryLimit).</summary>
    public static bool WarpRowsFit(Accelerator acc, AttentionShape s, AttentionVersion version = AttentionVersion.V8WarpRows)
        => Math.Max(PassBytes(s, 0, version), PassBytes(s, 1, version)) <= SharedMemoryLimit.MaxBytes(acc);

    /// <summary>Bytes of shared memory a group of a warp-rows version's pass (0 forward, 1 key side: v14's larger kernel,
    /// 2 the dQ kernel, v10's and v12's) takes at this head: v8's, v11's (lean), v13's-v15's (mma).</summary>
    static int PassBytes(AttentionShape s, int pass, AttentionVersion version)
    {
        int cp = WarpRowsChannels(s.Ch);
        int floats = pass == 0 && IsMma(version) ? Tf32x3SharedFloats(cp, IsPipelinedMma(version))
            : pass == 1 && IsMmaBackward(version) ? Tf32x3KeySideFloats(cp, true, IsPipelinedMma(version))
            : pass < 2 && IsLean(version) ? LeanSharedFloats(cp, pass) : WarpRowsSharedFloats(cp, pass);
        return floats * sizeof(float);
    }

    /// <summary>Whether v8 takes this head: up to 64 channels.</summary>
    public static bool FitsV8(AttentionShape s) => s.Ch <= 64;

    /// <summary>v8's channels: the head's rounded up to 32 or 64 (a Block4's 4 columns x 8 lanes per 32).</summary>
    static int WarpRowsChannels(int ch) => ch <= 32 ? 32 : 64;

    /// <summary>Shared memory of v8's forward (pass 0) and key side (pass 1), in floats, at padded channels cp.
    /// Forward: Q [cp][64]; two buffers of K [cp][32] and V^T [32][cp + 4]; four warps' P [32][20] and row scratch [32][4].
    /// Key side: K, V [cp][64]; Q, dA [cp][32]; Q^T, dA^T [32][cp + 4]; lse, delta [32]; four warps' P^T, then dS^T,
    /// [32][20]. At 32 channels 37 and 43 KB (under 48 KB: devices that do not raise the limit run them), at 64 channels
    /// 61 and 75 KB. v10's dQ (pass 2): two buffers of K^T [32][cp + 4]; four warps' dS^T [32][20]: 19 and 27 KB.</summary>
    public static int WarpRowsSharedFloats(int cp, int pass) => pass switch
    {
        0 => cp * WarpRowsBlock + 2 * (cp * StreamTile + StreamTile * (cp + 4)) + 4 * StreamTile * PrivatePitch + 4 * RowScratch,
        1 => 2 * cp * WarpRowsBlock + 2 * cp * StreamTile + 2 * StreamTile * (cp + 4) + 2 * StreamTile + 4 * StreamTile * PrivatePitch,
        _ => 2 * StreamTile * (cp + 4) + 4 * StreamTile * PrivatePitch,
    };

    /// <summary>Copies positions pos0 .. pos0 + w - 1 (w = 32 or 64) of a part of head-batch b into sh[at + c w + x] and,
    /// where atT &gt;= 0, transposed into sh[atT + x (cp + 4) + c]; zero past the positions and for channels ch .. cp - 1.
    /// Thread e takes position e mod w and channels e / w, e / w + 128 / w, ...: a warp reads 128 contiguous bytes.
    /// Four loads are issued before their stores (cp is a multiple of 32), so four are in flight where a store would
    /// otherwise wait for each load in turn.</summary>
    static void LoadRows(ArrayView<float> src, ArrayView<float> sh, int at, int atT, AttentionShape s, int b, int part, int pos0, int w, int cp)
    {
        int head = HeadAt(s, b, part, pos0), x = Group.IdxX & (w - 1), step = w == 64 ? 2 : 4;
        bool inside = pos0 + x < s.T;
        for (int c = w == 64 ? Group.IdxX >> 6 : Group.IdxX >> 5; c < cp; c += 4 * step)
        {
            float y0 = Fetch(src, head, s, c, x, inside), y1 = Fetch(src, head, s, c + step, x, inside),
                y2 = Fetch(src, head, s, c + 2 * step, x, inside), y3 = Fetch(src, head, s, c + 3 * step, x, inside);
            sh[at + c * w + x] = y0;
            sh[at + (c + step) * w + x] = y1;
            sh[at + (c + 2 * step) * w + x] = y2;
            sh[at + (c + 3 * step) * w + x] = y3;
            if (atT < 0) continue;
            int t = atT + x * (cp + 4) + c;
            sh[t] = y0;
            sh[t + step] = y1;
            sh[t + 2 * step] = y2;
            sh[t + 3 * step] = y3;
        }
    }

    /// <summary>Copies positions pos0 .. pos0 + 31 of a part of head-batch b transposed into sh[at + x (cp + 4) + c], zero
    /// past the positions and for channels ch .. cp - 1. Thread e takes position 8 (e / 32) + (e / 4) mod 8 and channels
    /// e mod 4, + 4, ...: a warp reads 4 runs of 8 positions and stores to 32 different banks (cp + 4 is 4 more than a
    /// multiple of 32). Four loads in flight, as LoadRows.</summary>
    static void LoadTransposed(ArrayView<float> src, ArrayView<float> sh, int at, AttentionShape s, int b, int part, int pos0, int cp)
    {
        int head = HeadAt(s, b, part, pos0), x = TransposedPosition(), t = at + x * (cp + 4);
        bool inside = pos0 + x < s.T;
        for (int c = Group.IdxX & 3; c < cp; c += 16)
        {
            float y0 = Fetch(src, head, s, c, x, inside), y1 = Fetch(src, head, s, c + 4, x, inside),
                y2 = Fetch(src, head, s, c + 8, x, inside), y3 = Fetch(src, head, s, c + 12, x, inside);
            sh[t + c] = y0;
            sh[t + c + 4] = y1;
            sh[t + c + 8] = y2;
            sh[t + c + 12] = y3;
        }
    }

    /// <summary>c += sum over x &lt; k of A(x, 4 r ..) B(x, 4 c ..), both runs of 4 floats at a[x aPitch] and b[x bPitch]
    /// (Float4 indices): two LDS.128 for 16 multiply-adds. k is a multiple of 4 (padded channels, or a 32-position
    /// tile), unrolled by hand: ptxas does not unroll a loop whose trip count is a run-time value.</summary>
    static Block4 RunProduct(Block4 c, ArrayView<Float4> a, int aPitch, ArrayView<Float4> b, int bPitch, int k)
    {
        for (int x = 0; x < k; x += 4)
        {
            c = RunStep(c, a, b, x * aPitch, x * bPitch);
            c = RunStep(c, a, b, (x + 1) * aPitch, (x + 1) * bPitch);
            c = RunStep(c, a, b, (x + 2) * aPitch, (x + 2) * bPitch);
            c = RunStep(c, a, b, (x + 3) * aPitch, (x + 3) * bPitch);
        }
        return c;
    }

    static Block4 RunStep(Block4 c, ArrayView<Float4> a, ArrayView<Float4> b, int i, int j) => Block4.Fma(c, a[i], b[j]);

    /// <summary>As RunProduct, for two 32-column chunks of B (64-channel heads) sharing A's loads.</summary>
    static void RunProduct2(ref Block4 c0, ref Block4 c1, ArrayView<Float4> a, int aPitch, ArrayView<Float4> b, int bPitch, int k)
    {
        for (int x = 0; x < k; x++)
        {
            Float4 u = a[x * aPitch];
            c0 = Block4.Fma(c0, u, b[x * bPitch]);
            c1 = Block4.Fma(c1, u, b[x * bPitch + 8]);
        }
    }

    /// <summary>Row i of c times k_i.</summary>
    static Block4 ScaleRows(Block4 c, float k0, float k1, float k2, float k3)
    {
        c.C00 *= k0; c.C01 *= k0; c.C02 *= k0; c.C03 *= k0;
        c.C10 *= k1; c.C11 *= k1; c.C12 *= k1; c.C13 *= k1;
        c.C20 *= k2; c.C21 *= k2; c.C22 *= k2; c.C23 *= k2;
        c.C30 *= k3; c.C31 *= k3; c.C32 *= k3; c.C33 *= k3;
        return c;
    }

    /// <summary>Column j of c made -inf where j &gt;= valid (keys past T).</summary>
    static Block4 MaskColumns(Block4 c, int valid)
    {
        float n = float.NegativeInfinity;
        if (valid < 4) { c.C03 = n; c.C13 = n; c.C23 = n; c.C33 = n; }
        if (valid < 3) { c.C02 = n; c.C12 = n; c.C22 = n; c.C32 = n; }
        if (valid < 2) { c.C01 = n; c.C11 = n; c.C21 = n; c.C31 = n; }
        if (valid < 1) { c.C00 = n; c.C10 = n; c.C20 = n; c.C30 = n; }
        return c;
    }

    /// <summary>Per row of the lane's 4 (x, y, z, w), the largest (or the sum) of x over the 8 lanes of its lane row
    /// (lanes 8 r .. 8 r + 7), exchanged through the warp's 32-Float4 scratch: a lane row reads the same 8 Float4s
    /// (broadcasts). Not warp shuffles: ILGPU's OpenCL backend cannot emit them.</summary>
    static Float4 AcrossRow(ArrayView<Float4> scratch, int lane, Float4 x, bool max)
    {
        scratch[lane] = x;
        Warp.Barrier();
        var y = scratch[lane & ~7];
        for (int j = 1; j < 8; j++)
        {
            var z = scratch[(lane & ~7) + j];
            y = max ? new Float4(XMath.Max(y.X, z.X), XMath.Max(y.Y, z.Y), XMath.Max(y.Z, z.Z), XMath.Max(y.W, z.W)) : y + z;
        }
        Warp.Barrier();   // all have read before the scratch is written again
        return y;
    }

    /// <summary>Stores column j of c transposed: the Float4 (c.C0j, c.C1j, c.C2j, c.C3j) at p[(4 col + j) PrivatePitch / 4
    /// + row], for j = 0..3 (a warp's private [32][20] tile; row, col: the lane's).</summary>
    static void PutColumns(ArrayView<Float4> p, int row, int col, Block4 c)
    {
        int at = col * PrivatePitch + row;   // Float4 index of column 4 col (PrivatePitch / 4 Float4s per row)
        const int step = PrivatePitch / 4;
        p[at] = new Float4(c.C00, c.C10, c.C20, c.C30);
        p[at + step] = new Float4(c.C01, c.C11, c.C21, c.C31);
        p[at + 2 * step] = new Float4(c.C02, c.C12, c.C22, c.C32);
        p[at + 3 * step] = new Float4(c.C03, c.C13, c.C23, c.C33);
    }

    /// <summary>v8 forward: one group per (head-batch, block of 64 queries), each warp 16 of them; the keys stream in
    /// tiles of 32 through two buffers (loads of tile i + 1 during tile i's products, one barrier per tile). A lane holds
    /// S for 4 queries x 4 keys, the running max and its partial sum for those queries, and O for 4 queries x 4 (or 2 x 4)
    /// channels. Writes a and lse as v4 does.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void WarpRowsForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp)
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();
        var sh = sh4.Cast<float>();
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, r = lane >> 3, c = lane & 7, vPitch = cp + 4;
        int q = 0, k = cp * WarpRowsBlock, v = k + 2 * cp * StreamTile, p = v + 2 * StreamTile * vPitch + warp * StreamTile * PrivatePitch;
        var priv = sh4.SubView(p / 4);
        var scratch = sh4.SubView((v + 2 * StreamTile * vPitch + 4 * StreamTile * PrivatePitch + warp * RowScratch) / 4);
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
                int u0 = i * StreamTile, kb = k + (i & 1) * cp * StreamTile, vb = v + (i & 1) * StreamTile * vPitch;
                if (i + 1 < tiles)   // the other buffers: last read during tile i - 1, before its barrier
                {
                    LoadRows(qkv, sh, k + ((i + 1) & 1) * cp * StreamTile, -1, s, b, 1, u0 + StreamTile, StreamTile, cp);
                    LoadTransposed(qkv, sh, v + ((i + 1) & 1) * StreamTile * vPitch, s, b, 2, u0 + StreamTile, cp);
                }
                if (tw < s.T)   // a warp past the last query only loads and meets the barriers
                {
                    var x = RunProduct(default, sh4.SubView((q + tw - t0) / 4 + r), WarpRowsBlock / 4, sh4.SubView(kb / 4 + c), StreamTile / 4, cp);
                    x = FoldTile(ref st, x, u0 + StreamTile > s.T, s.T - u0 - 4 * c, alpha, scratch, lane);
                    // P key-major through the warp's own tile, then O += P V over the tile's keys (V^T rows: channels in runs).
                    PutColumns(priv, r, c, x);
                    Warp.Barrier();
                    if (cp > 32) RunProduct2(ref st.O0, ref st.O1, priv.SubView(r), PrivatePitch / 4, sh4.SubView(vb / 4 + c), vPitch / 4, StreamTile);
                    else st.O0 = RunProduct(st.O0, priv.SubView(r), PrivatePitch / 4, sh4.SubView(vb / 4 + c), vPitch / 4, StreamTile);
                }
                Group.Barrier();
            }
            if (tw < s.T) StoreForwardRows(a, lse, s, b, tw + 4 * r, c, st, scratch, lane);
        }
    }

    /// <summary>A lane's running softmax over the key tiles for its 4 queries (v8's and v11's forward): the maxima M of
    /// alpha S, the partial sums L (per lane until the end: the rows' sums are made once, in StoreForwardRows) and O for
    /// 4 queries x 4 (or 2 x 4) channels.</summary>
    struct SoftmaxRows
    {
        public float M0, M1, M2, M3, L0, L1, L2, L3;
        public Block4 O0, O1;

        public static SoftmaxRows Start()
        {
            float n = float.NegativeInfinity;
            return new SoftmaxRows { M0 = n, M1 = n, M2 = n, M3 = n };
        }
    }

    /// <summary>Folds a tile's scores x into the lane's rows (in a <paramref name="partial"/> tile, the keys from column
    /// <paramref name="valid"/> on are past T and masked): the rows' new maxima across the lane row, O and L rescaled by how much of them to keep (0 on the first
    /// tile, where M = -inf), L grown by the tile's P; returns P, unnormalised.</summary>
    static Block4 FoldTile(ref SoftmaxRows st, Block4 x, bool partial, int valid, float alpha, ArrayView<Float4> scratch, int lane)
    {
        if (partial) x = MaskColumns(x, valid);
        var raw = AcrossRow(scratch, lane, RowMaxima(x), max: true);   // the rows' new maxima (alpha > 0)
        float n0 = XMath.Max(st.M0, alpha * raw.X), n1 = XMath.Max(st.M1, alpha * raw.Y), n2 = XMath.Max(st.M2, alpha * raw.Z),
            n3 = XMath.Max(st.M3, alpha * raw.W);
        x = ExpRows(x, alpha, n0, n1, n2, n3);
        float k0 = XMath.Exp(st.M0 - n0), k1 = XMath.Exp(st.M1 - n1), k2 = XMath.Exp(st.M2 - n2), k3 = XMath.Exp(st.M3 - n3);
        st.M0 = n0; st.M1 = n1; st.M2 = n2; st.M3 = n3;
        st.L0 = k0 * st.L0 + x.C00 + x.C01 + x.C02 + x.C03;
        st.L1 = k1 * st.L1 + x.C10 + x.C11 + x.C12 + x.C13;
        st.L2 = k2 * st.L2 + x.C20 + x.C21 + x.C22 + x.C23;
        st.L3 = k3 * st.L3 + x.C30 + x.C31 + x.C32 + x.C33;
        st.O0 = ScaleRows(st.O0, k0, k1, k2, k3);
        st.O1 = ScaleRows(st.O1, k0, k1, k2, k3);
        return x;
    }

    /// <summary>The forward's end for a lane's queries t .. t + 3: the rows' sums across the lane row, a = O / l at the
    /// lane's channels, and (lanes of column 0) lse = m + log l.</summary>
    static void StoreForwardRows(ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int b, int t, int c, SoftmaxRows st,
        ArrayView<Float4> scratch, int lane)
    {
        var l = AcrossRow(scratch, lane, new Float4(st.L0, st.L1, st.L2, st.L3), max: false);
        int head = s.Out(b, 0, 0);
        StoreRows(a, head, s, t, 4 * c, st.O0, 1f / l.X, 1f / l.Y, 1f / l.Z, 1f / l.W);
        StoreRows(a, head, s, t, 32 + 4 * c, st.O1, 1f / l.X, 1f / l.Y, 1f / l.Z, 1f / l.W);
        if (c != 0) return;
        if (t < s.T) lse[b * s.T + t] = st.M0 + XMath.Log(l.X);
        if (t + 1 < s.T) lse[b * s.T + t + 1] = st.M1 + XMath.Log(l.Y);
        if (t + 2 < s.T) lse[b * s.T + t + 2] = st.M2 + XMath.Log(l.Z);
        if (t + 3 < s.T) lse[b * s.T + t + 3] = st.M3 + XMath.Log(l.W);
    }

    /// <summary>dst[head + (c0 + j) T + t + i] = k_i x(i, j) for positions t + i &lt; T and channels c0 + j &lt; ch.</summary>
    static void StoreRows(ArrayView<float> dst, int head, AttentionShape s, int t, int c0, Block4 x, float k0, float k1, float k2, float k3)
    {
        StoreColumn(dst, head, s, t, c0, k0 * x.C00, k1 * x.C10, k2 * x.C20, k3 * x.C30);
        StoreColumn(dst, head, s, t, c0 + 1, k0 * x.C01, k1 * x.C11, k2 * x.C21, k3 * x.C31);
        StoreColumn(dst, head, s, t, c0 + 2, k0 * x.C02, k1 * x.C12, k2 * x.C22, k3 * x.C32);
        StoreColumn(dst, head, s, t, c0 + 3, k0 * x.C03, k1 * x.C13, k2 * x.C23, k3 * x.C33);
    }

    static void StoreColumn(ArrayView<float> dst, int head, AttentionShape s, int t, int channel, float y0, float y1, float y2, float y3)
    {
        if (channel >= s.Ch) return;
        int at = head + channel * s.T + t;
        if (t < s.T) dst[at] = y0;
        if (t + 1 < s.T) dst[at + 1] = y1;
        if (t + 2 < s.T) dst[at + 2] = y2;
        if (t + 3 < s.T) dst[at + 3] = y3;
    }

    /// <summary>v8 backward, key side: one group per (head-batch, block of 64 keys), each warp 16 of them; the queries
    /// stream in tiles of 32. A lane holds S^T and dP^T for 4 keys x 4 queries, makes P^T = exp(alpha S^T - lse) and
    /// dS^T = P^T (dP^T - delta) in registers, and passes them through its warp's own tiles to the products dV += P^T dA^T
    /// and dK += dS^T Q^T (4 keys x 4 or 2 x 4 channels each); the warp also stores its dS [N*H, T, T] (coalesced: two
    /// queries x 16 keys a store) for the GEMM that makes dQ, as v6's key side does.</summary>
    [LaunchBounds(WarpRowsThreads, 4)]
    static void WarpRowsKeySideKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, ArrayView<float> scores, AttentionShape s, int cp)
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();
        var sh = sh4.Cast<float>();
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, r = lane >> 3, c = lane & 7, tPitch = cp + 4;
        int kk = 0, vv = cp * WarpRowsBlock, q = 2 * cp * WarpRowsBlock, g = q + cp * StreamTile, qt = g + cp * StreamTile,
            gt = qt + StreamTile * tPitch, ls = gt + StreamTile * tPitch, dl = ls + StreamTile,
            pp = dl + StreamTile + warp * StreamTile * PrivatePitch;
        var pt = sh4.SubView(pp / 4);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, u0 = (w - b * blocks) * WarpRowsBlock, uw = u0 + warp * WarpRows;
            LoadRows(qkv, sh, kk, -1, s, b, 1, u0, WarpRowsBlock, cp);
            LoadRows(qkv, sh, vv, -1, s, b, 2, u0, WarpRowsBlock, cp);
            Block4 dv0 = default, dv1 = default, dk0 = default, dk1 = default;
            for (int t0 = 0; t0 < s.T; t0 += StreamTile)
            {
                LoadRows(qkv, sh, q, qt, s, b, 0, t0, StreamTile, cp);
                LoadRows(da, sh, g, gt, s, b, 3, t0, StreamTile, cp);
                LoadRowTerms(lse, delta, sh, ls, dl, s, b, t0, StreamTile);
                Group.Barrier();
                if (uw < s.T)   // a warp past the last key only loads and meets the barriers
                {
                    var kr = sh4.SubView((kk + uw - u0) / 4 + r);
                    var sc = RunProduct(default, kr, WarpRowsBlock / 4, sh4.SubView(q / 4 + c), StreamTile / 4, cp);
                    var dp = RunProduct(default, sh4.SubView((vv + uw - u0) / 4 + r), WarpRowsBlock / 4, sh4.SubView(g / 4 + c), StreamTile / 4, cp);
                    Float4 lq = sh4[ls / 4 + c], dq = sh4[dl / 4 + c];
                    sc = ExpColumns(sc, alpha, lq);
                    dp = GradColumns(sc, dp, dq.X, dq.Y, dq.Z, dq.W);
                    // P^T, then dS^T, through the warp's one private tile (so the key side fits 48 KB at 32 channels).
                    PutColumns(pt, r, c, sc);
                    Warp.Barrier();
                    if (cp > 32) RunProduct2(ref dv0, ref dv1, pt.SubView(r), PrivatePitch / 4, sh4.SubView(gt / 4 + c), tPitch / 4, StreamTile);
                    else dv0 = RunProduct(dv0, pt.SubView(r), PrivatePitch / 4, sh4.SubView(gt / 4 + c), tPitch / 4, StreamTile);
                    Warp.Barrier();   // every lane has read P^T
                    PutColumns(pt, r, c, dp);
                    Warp.Barrier();
                    StoreScoreRows(scores, sh, pp, s, b, t0, uw, lane, StreamTile);
                    if (cp > 32) RunProduct2(ref dk0, ref dk1, pt.SubView(r), PrivatePitch / 4, sh4.SubView(qt / 4 + c), tPitch / 4, StreamTile);
                    else dk0 = RunProduct(dk0, pt.SubView(r), PrivatePitch / 4, sh4.SubView(qt / 4 + c), tPitch / 4, StreamTile);
                }
                Group.Barrier();
            }
            if (uw < s.T) StoreKeyGrads(dqkv, s, b, uw + 4 * r, c, dk0, dk1, dv0, dv1, alpha);
        }
    }

    /// <summary>dS[t, u] for a warp's 16 keys u = uw .. and the tile's queries t = t0 .. t0 + queries - 1, from the warp's
    /// private dS^T tile at sh[pp]: each store covers two queries' 16 keys (coalesced; a constant trip count: unrolled).</summary>
    static void StoreScoreRows(ArrayView<float> scores, ArrayView<float> sh, int pp, AttentionShape s, int b, int t0, int uw, int lane, int queries)
    {
        int ku = lane & 15, tq0 = lane >> 4, at = (b * s.T + t0 + tq0) * s.T + uw + ku;
        bool keyInside = uw + ku < s.T;
        for (int m = 0; m < queries / 2; m++)
            if (keyInside && t0 + tq0 + 2 * m < s.T)
                scores[at + 2 * m * s.T] = sh[pp + (tq0 + 2 * m) * PrivatePitch + ku];
    }

    /// <summary>The key side's end for a lane's keys u .. u + 3: dK (times alpha) and dV at its channels.</summary>
    static void StoreKeyGrads(ArrayView<float> dqkv, AttentionShape s, int b, int u, int c, Block4 dk0, Block4 dk1, Block4 dv0, Block4 dv1, float alpha)
    {
        int kHead = s.Qkv(b, 1, 0, 0), vHead = s.Qkv(b, 2, 0, 0);
        StoreRows(dqkv, kHead, s, u, 4 * c, dk0, alpha, alpha, alpha, alpha);
        StoreRows(dqkv, kHead, s, u, 32 + 4 * c, dk1, alpha, alpha, alpha, alpha);
        StoreRows(dqkv, vHead, s, u, 4 * c, dv0, 1f, 1f, 1f, 1f);
        StoreRows(dqkv, vHead, s, u, 32 + 4 * c, dv1, 1f, 1f, 1f, 1f);
    }

    /// <summary>v10's dQ = alpha dS K from the dS [N*H, T, T] the key side stored: one group per (head-batch, block of 64
    /// queries), each warp 16 of them, the keys streaming in tiles of 32 as in the forward: K^T tiles [32][cp + 4]
    /// through two shared buffers (one barrier per tile), the warp's 16 rows of dS read into registers a tile ahead and
    /// stored key-major into its private tile, so dQ += dS K is the forward's O += P V. A lane holds dQ for 4 queries x
    /// 4 (or 2 x 4) channels. dS is read once, coalesced (a warp reads 32 keys of one query per load).
    /// Six groups a multiprocessor (80 registers, no spills under ptxas for sm_80; 8 groups would spill 80 B). On an H200
    /// at fmnist's 14x14 (Nsight Compute): 262 us at four groups (24% occupancy), 264 at six (34%): its warps wait on
    /// loads more groups do not hide (GEMM v15, which it replaces, took 348).</summary>
    [LaunchBounds(WarpRowsThreads, 6)]
    static void WarpRowsQueryGradKernel(ArrayView<float> qkv, ArrayView<float> scores, ArrayView<float> dqkv, AttentionShape s, int cp)
        => QueryGrad(qkv, scores, dqkv, s, cp, default(QueryGradV10));

    /// <summary>v12's dQ kernel: v10's with each K^T tile read into registers a tile ahead, during the products, and stored
    /// into the other buffer just before the tile's barrier, where v10 waits on those loads before its products; its
    /// products are v11's (views made once per 4 steps). Five groups a multiprocessor (six, at 80 registers, spilled 64 B).</summary>
    [LaunchBounds(WarpRowsThreads, 5)]
    static void LeanQueryGradKernel(ArrayView<float> qkv, ArrayView<float> scores, ArrayView<float> dqkv, AttentionShape s, int cp)
        => QueryGrad(qkv, scores, dqkv, s, cp, default(QueryGradV12));

    /// <summary>Which dQ kernel QueryGrad compiles, fixed at compile time: v10's, or v12's (Lean: K^T through registers
    /// a tile ahead, v11's products).</summary>
    public interface IQueryGradForm
    {
        bool Lean { get; }
    }

    public struct QueryGradV10 : IQueryGradForm
    {
        public readonly bool Lean => false;
    }

    public struct QueryGradV12 : IQueryGradForm
    {
        public readonly bool Lean => true;
    }

    static void QueryGrad<TF>(ArrayView<float> qkv, ArrayView<float> scores, ArrayView<float> dqkv, AttentionShape s, int cp, TF form)
        where TF : struct, IQueryGradForm
    {
        var sh4 = SharedMemory.GetDynamic<Float4>();
        var sh = sh4.Cast<float>();
        int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, r = lane >> 3, c = lane & 7, kPitch = cp + 4;
        var priv = sh4.SubView((2 * StreamTile * kPitch + warp * StreamTile * PrivatePitch) / 4);
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + StreamTile - 1) / StreamTile;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, t0 = (w - b * blocks) * WarpRowsBlock, tw = t0 + warp * WarpRows;
            LoadTransposed(qkv, sh, 0, s, b, 1, 0, cp);
            var ds = ScoreColumn(scores, s, b, tw, lane);
            Group.Barrier();
            Block4 o0 = default, o1 = default;
            for (int i = 0; i < tiles; i++)
            {
                int u0 = i * StreamTile, kb = (i & 1) * StreamTile * kPitch;
                // The warp's dS^T for tile i: its private tile was last read in tile i - 1's products, before its barrier.
                PutColumn(priv, lane, ds);
                Warp.Barrier();
                int other = ((i + 1) & 1) * StreamTile * kPitch;
                Block4 nextKeys = default;
                if (i + 1 < tiles)   // the other K^T buffer: last read during tile i - 1, before its barrier
                {
                    if (form.Lean) nextKeys = FetchTransposed(qkv, s, b, 1, u0 + StreamTile, cp);
                    else LoadTransposed(qkv, sh, other, s, b, 1, u0 + StreamTile, cp);
                    ds = ScoreColumn(scores, s, b, tw, u0 + StreamTile + lane);   // used after this tile's products
                }
                if (tw < s.T)   // a warp past the last query only loads and meets the barriers
                {
                    var kt = sh4.SubView(kb / 4 + c);
                    if (cp <= 32 && form.Lean) o0 = RunProductBy4(o0, priv.SubView(r), PrivatePitch / 4, kt, kPitch / 4, StreamTile);
                    else if (cp <= 32) o0 = RunProduct(o0, priv.SubView(r), PrivatePitch / 4, kt, kPitch / 4, StreamTile);
                    else if (form.Lean) RunProduct2By4(ref o0, ref o1, priv.SubView(r), PrivatePitch / 4, kt, kPitch / 4, StreamTile);
                    else RunProduct2(ref o0, ref o1, priv.SubView(r), PrivatePitch / 4, kt, kPitch / 4, StreamTile);
                }
                if (form.Lean && i + 1 < tiles) PutTransposed(sh, other, cp, nextKeys);
                Group.Barrier();
            }
            if (tw < s.T)
            {
                int t = tw + 4 * r, qHead = s.Qkv(b, 0, 0, 0);
                StoreRows(dqkv, qHead, s, t, 4 * c, o0, alpha, alpha, alpha, alpha);
                StoreRows(dqkv, qHead, s, t, 32 + 4 * c, o1, alpha, alpha, alpha, alpha);
            }
        }
    }

    /// <summary>dS[t, u] of head-batch b for the 16 queries t = tw + 4 i + j (entry Cij), 0 where t or u is past T.</summary>
    static Block4 ScoreColumn(ArrayView<float> scores, AttentionShape s, int b, int tw, int u)
    {
        Block4 x = default;
        if (u >= s.T) return x;
        int at = (b * s.T + tw) * s.T + u, rows = s.T - tw;
        if (rows > 0) x.C00 = scores[at];
        if (rows > 1) x.C01 = scores[at + s.T];
        if (rows > 2) x.C02 = scores[at + 2 * s.T];
        if (rows > 3) x.C03 = scores[at + 3 * s.T];
        if (rows > 4) x.C10 = scores[at + 4 * s.T];
        if (rows > 5) x.C11 = scores[at + 5 * s.T];
        if (rows > 6) x.C12 = scores[at + 6 * s.T];
        if (rows > 7) x.C13 = scores[at + 7 * s.T];
        if (rows > 8) x.C20 = scores[at + 8 * s.T];
        if (rows > 9) x.C21 = scores[at + 9 * s.T];
        if (rows > 10) x.C22 = scores[at + 10 * s.T];
        if (rows > 11) x.C23 = scores[at + 11 * s.T];
        if (rows > 12) x.C30 = scores[at + 12 * s.T];
        if (rows > 13) x.C31 = scores[at + 13 * s.T];
        if (rows > 14) x.C32 = scores[at + 14 * s.T];
        if (rows > 15) x.C33 = scores[at + 15 * s.T];
        return x;
    }

    /// <summary>Stores a lane's ScoreColumn as row <paramref name="key"/> of the warp's private [32][20] tile: queries
    /// 4 i .. 4 i + 3 as the Float4 i (eight lanes' stores of 16 bytes, 80 bytes apart, fall in distinct banks).</summary>
    static void PutColumn(ArrayView<Float4> p, int key, Block4 x)
    {
        int at = key * (PrivatePitch / 4);
        p[at] = new Float4(x.C00, x.C01, x.C02, x.C03);
        p[at + 1] = new Float4(x.C10, x.C11, x.C12, x.C13);
        p[at + 2] = new Float4(x.C20, x.C21, x.C22, x.C23);
        p[at + 3] = new Float4(x.C30, x.C31, x.C32, x.C33);
    }

    /// <summary>Each row's largest entry (x, y, z, w: rows 0-3).</summary>
    static Float4 RowMaxima(Block4 x) => new(XMath.Max(XMath.Max(x.C00, x.C01), XMath.Max(x.C02, x.C03)), XMath.Max(XMath.Max(x.C10, x.C11),
        XMath.Max(x.C12, x.C13)), XMath.Max(XMath.Max(x.C20, x.C21), XMath.Max(x.C22, x.C23)), XMath.Max(XMath.Max(x.C30, x.C31), XMath.Max(x.C32, x.C33)));

    /// <summary>exp(alpha x - n_i) entry by entry, n_i the row's (query's) running max: the forward's P, unnormalised.</summary>
    static Block4 ExpRows(Block4 x, float alpha, float n0, float n1, float n2, float n3)
    {
        x.C00 = XMath.Exp(alpha * x.C00 - n0); x.C01 = XMath.Exp(alpha * x.C01 - n0); x.C02 = XMath.Exp(alpha * x.C02 - n0); x.C03 = XMath.Exp(alpha * x.C03 - n0);
        x.C10 = XMath.Exp(alpha * x.C10 - n1); x.C11 = XMath.Exp(alpha * x.C11 - n1); x.C12 = XMath.Exp(alpha * x.C12 - n1); x.C13 = XMath.Exp(alpha * x.C13 - n1);
        x.C20 = XMath.Exp(alpha * x.C20 - n2); x.C21 = XMath.Exp(alpha * x.C21 - n2); x.C22 = XMath.Exp(alpha * x.C22 - n2); x.C23 = XMath.Exp(alpha * x.C23 - n2);
        x.C30 = XMath.Exp(alpha * x.C30 - n3); x.C31 = XMath.Exp(alpha * x.C31 - n3); x.C32 = XMath.Exp(alpha * x.C32 - n3); x.C33 = XMath.Exp(alpha * x.C33 - n3);
        return x;
    }

    /// <summary>P^T = exp(alpha S^T - lse_j) entry by entry, lse_j the column's (query's). Queries past T need no mask: their
    /// rows of Q and dA are zero and their lse and delta 0, so P = 1 and dS = 0 there meet zero operands in dV and dK.</summary>
    static Block4 ExpColumns(Block4 x, float alpha, Float4 lse)
    {
        x.C00 = XMath.Exp(alpha * x.C00 - lse.X); x.C01 = XMath.Exp(alpha * x.C01 - lse.Y); x.C02 = XMath.Exp(alpha * x.C02 - lse.Z); x.C03 = XMath.Exp(alpha * x.C03 - lse.W);
        x.C10 = XMath.Exp(alpha * x.C10 - lse.X); x.C11 = XMath.Exp(alpha * x.C11 - lse.Y); x.C12 = XMath.Exp(alpha * x.C12 - lse.Z); x.C13 = XMath.Exp(alpha * x.C13 - lse.W);
        x.C20 = XMath.Exp(alpha * x.C20 - lse.X); x.C21 = XMath.Exp(alpha * x.C21 - lse.Y); x.C22 = XMath.Exp(alpha * x.C22 - lse.Z); x.C23 = XMath.Exp(alpha * x.C23 - lse.W);
        x.C30 = XMath.Exp(alpha * x.C30 - lse.X); x.C31 = XMath.Exp(alpha * x.C31 - lse.Y); x.C32 = XMath.Exp(alpha * x.C32 - lse.Z); x.C33 = XMath.Exp(alpha * x.C33 - lse.W);
        return x;
    }

    /// <summary>dS = P (dP - delta_j) entry by entry, delta_j the column's (query's) row term.</summary>
    static Block4 GradColumns(Block4 p, Block4 d, float e0, float e1, float e2, float e3)
    {
        d.C00 = p.C00 * (d.C00 - e0); d.C01 = p.C01 * (d.C01 - e1); d.C02 = p.C02 * (d.C02 - e2); d.C03 = p.C03 * (d.C03 - e3);
        d.C10 = p.C10 * (d.C10 - e0); d.C11 = p.C11 * (d.C11 - e1); d.C12 = p.C12 * (d.C12 - e2); d.C13 = p.C13 * (d.C13 - e3);
        d.C20 = p.C20 * (d.C20 - e0); d.C21 = p.C21 * (d.C21 - e1); d.C22 = p.C22 * (d.C22 - e2); d.C23 = p.C23 * (d.C23 - e3);
        d.C30 = p.C30 * (d.C30 - e0); d.C31 = p.C31 * (d.C31 - e1); d.C32 = p.C32 * (d.C32 - e2); d.C33 = p.C33 * (d.C33 - e3);
        return d;
    }

    /// <summary>v4's launch shape (PerRowTile), its shared memory as Float4s for the 16-byte reads.</summary>
    static KernelConfig WarpRowsLaunch(Accelerator acc, AttentionShape s, int pass, AttentionVersion version)
        => WarpRowsLaunchFloats(acc, s, PassBytes(s, pass, version) / sizeof(float));

    static KernelConfig WarpRowsLaunchFloats(Accelerator acc, AttentionShape s, int floats)
        => PerRowTile(acc, s, WarpRowsBlock, WarpRowsThreads, SharedMemoryConfig.RequestDynamic<Float4>(floats / 4));

    /// <summary>Refuses, naming the version, a device without v8's groups, a head past 64 channels, or a pass (0 forward,
    /// 1 key side) whose shared memory is past the limit.</summary>
    static void RequireWarpRows(Accelerator acc, AttentionShape s, int pass, int? limitBytes, AttentionVersion version)
    {
        string name = $"attention v{(int)version}";
        if (!WarpRowsRun(acc))
            throw new VersionNotApplicableException($"{name} needs 32-lane warps in groups of {WarpRowsThreads} threads; {acc.Name} has " +
                                                    $"{acc.WarpSize}-lane warps and groups of up to {acc.MaxNumThreadsPerGroup}");
        if (!FitsV8(s))
            throw new VersionNotApplicableException($"{name} takes heads of up to 64 channels; these have {s.Ch}");
        int bytes = PassBytes(s, pass, version), limit = limitBytes ?? SharedMemoryLimit.MaxBytes(acc);
        if (bytes > limit)
            throw new VersionNotApplicableException($"{name}'s {(pass == 0 ? "forward" : "key side")} takes {bytes} bytes of shared memory " +
                                                    $"at {s.Ch}-channel heads; {acc.Name} allows {limit}");
    }

    /// <summary>The forward of a version that runs v8's kernels (UsesWarpRows): v8's for v8-v10, v11's
    /// (Attention.WarpRowsLean.cs) for v11 and v12, v13's (Attention.Tf32x3.cs) for v13 and v14, v15's for v15; a
    /// [N, C, T] and lse [N*H, T] in one launch.</summary>
    public static void WarpRowsForward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        int? limitBytes = null, AttentionVersion version = AttentionVersion.V8WarpRows)
    {
        if (!UsesWarpRows(version)) throw new ArgumentException($"attention v{(int)version} does not run v8's kernels", nameof(version));
        RequireWarpRows(acc, s, 0, limitBytes, version);
        if (IsPipelinedMma(version))
        {
            KernelCache.Get(acc, "attention.v15.forward", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int, TileSources> k = Tf32x3AsyncForwardKernel;
                return x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup));
            })(WarpRowsLaunch(acc, s, 0, version), qkv, a, lse, s, WarpRowsChannels(s.Ch), SourcesOf(s, qkv, default, default, default));
            return;
        }
        if (IsMma(version))
        {
            KernelCache.Get(acc, "attention.v13.forward", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k = Tf32x3ForwardKernel;
                return x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup));
            })(WarpRowsLaunch(acc, s, 0, version), qkv, a, lse, s, WarpRowsChannels(s.Ch));
            return;
        }
        bool lean = IsLean(version);
        KernelCache.Get(acc, lean ? "attention.v11.forward" : "attention.v8.forward", x =>
        {
            Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k = lean ? LeanForwardKernel : WarpRowsForwardKernel;
            return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
        })(WarpRowsLaunch(acc, s, 0, version), qkv, a, lse, s, WarpRowsChannels(s.Ch));
    }

    /// <summary>The backward of v8, v10-v15: delta = rowsum(da a) (v2's kernel), the key side (dK, dV, and dS into
    /// <paramref name="scores"/> [N*H, T, T]; v11's in v11-v13; v14's two kernels on the tensor cores, Attention.Tf32x3.cs;
    /// in v15 theirs with cp.async), and dQ = alpha K dS^T: by GEMM as v6's (v8, v11, v13-v15), by WarpRowsQueryGradKernel
    /// (v10) or LeanQueryGradKernel (v12).</summary>
    public static void WarpRowsBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        ArrayView<float> da, ArrayView<float> delta, ArrayView<float> scores, ArrayView<float> dqkv, GemmRunner? gemm = null,
        int? limitBytes = null, AttentionVersion version = AttentionVersion.V8WarpRows)
    {
        if (!UsesWarpRows(version) || version == AttentionVersion.V9WarpRowsForward)
            throw new ArgumentException($"attention v{(int)version}'s backward is not v8's (v9's is v6's)", nameof(version));
        RequireWarpRows(acc, s, 1, limitBytes, version);
        bool lean = IsLean(version);
        RowDeltas(acc, s, a, da, delta);
        if (IsMmaBackward(version)) Tf32x3KeySide(acc, s, qkv, da, lse, delta, dqkv, scores, IsPipelinedMma(version));
        else KernelCache.Get(acc, lean ? "attention.v11.key_side" : "attention.v8.key_side", x =>
        {
            Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k
                = lean ? LeanKeySideKernel : WarpRowsKeySideKernel;
            return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
        })(WarpRowsLaunch(acc, s, 1, version), qkv, da, lse, delta, dqkv, scores, s, WarpRowsChannels(s.Ch));
        if (!QueryGradByKernel(version))
        {
            GradFromScores(s, 0, qkv, scores, dqkv, gemm ?? Gemm.At(acc));
            return;
        }
        KernelCache.Get(acc, lean ? "attention.v12.query_grad" : "attention.v10.query_grad", x =>
        {
            Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int> k = lean ? LeanQueryGradKernel : WarpRowsQueryGradKernel;
            return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
        })(WarpRowsLaunch(acc, s, 2, version), qkv, scores, dqkv, s, WarpRowsChannels(s.Ch));
    }
}
