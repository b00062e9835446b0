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
    /// at 64 (under 48 KB: no limit to raise).</summary>
    public static int Tf32x3SharedFloats(int cp) => cp / 16 * (WarpRowsBlock + MmaKeys) * FragA.RowsPitch + MmaKeys * (cp + 4);

    [LaunchBounds(WarpRowsThreads, 4)]
    static void Tf32x3ForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int cp)
    {
        var sh = SharedMemory.GetDynamic<Float4>().Cast<float>();
        var scratch = TensorCore.Scratch();
        WarpTile64.Declare();
        WarpTile64.DeclareTf32x3();
        int warp = Warp.WarpIdx, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3, chunks = cp / 16;
        int kAt = chunks * WarpRowsBlock * FragA.RowsPitch, vAt = kAt + chunks * MmaKeys * FragA.RowsPitch, vPitch = cp + 4;
        // This lane's ldmatrix rows: of its warp's 16 queries (A) and of the tile's 32 keys (B), in the first chunk.
        int qRow = warp * 16 * FragA.RowsPitch + WarpTile64.LdsmRowA(lane), kRow = kAt + WarpTile64.LdsmRowB(lane);
        // This lane's V fragments: rows 2t and 2t + 1 of each 8 keys, channel g of each 8.
        int vLane = vAt + 2 * t * vPitch + g;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int blocks = (s.T + WarpRowsBlock - 1) / WarpRowsBlock, tiles = (s.T + MmaKeys - 1) / MmaKeys;
        for (int w = Grid.IdxX; w < s.Batch * blocks; w += Grid.DimX)
        {
            int b = w / blocks, t0 = (w - b * blocks) * WarpRowsBlock, q0 = t0 + warp * 16 + g;
            Group.Barrier();   // every warp past the last block's Q
            LoadSectors(qkv, sh, 0, true, s, b, 0, t0, WarpRowsBlock, cp);
            var acc = WarpTile64.Zero();
            // Rows g and g + 8 of the warp's queries: the running max of alpha S, and this lane's part of the sum.
            float m0 = float.NegativeInfinity, m1 = float.NegativeInfinity, l0 = 0f, l1 = 0f;
            for (int i = 0; i < tiles; i++)
            {
                int u0 = i * MmaKeys;
                Group.Barrier();   // every warp past the last tile's K and V
                LoadSectors(qkv, sh, kAt, true, s, b, 1, u0, MmaKeys, cp);
                LoadSectors(qkv, sh, vAt, false, s, b, 2, u0, MmaKeys, cp);
                Group.Barrier();
                acc = WarpTile64.ZeroScores(acc);
                for (int c = 0; c < chunks; c++)
                    acc = WarpTile64.ScoresTf32x3(acc, sh, qRow + c * WarpRowsBlock * FragA.RowsPitch, kRow + c * MmaKeys * FragA.RowsPitch, scratch);
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
                acc = AddValues(acc, sh, vLane, vPitch, x0, cp, scratch);
                acc = AddValues(acc, sh, vLane + 8 * vPitch, vPitch, x1, cp, scratch);
                acc = AddValues(acc, sh, vLane + 16 * vPitch, vPitch, x2, cp, scratch);
                acc = AddValues(acc, sh, vLane + 24 * vPitch, vPitch, x3, cp, scratch);
            }
            l0 += TensorCore.QuadXor(l0, 1, scratch); l0 += TensorCore.QuadXor(l0, 2, scratch);
            l1 += TensorCore.QuadXor(l1, 1, scratch); l1 += TensorCore.QuadXor(l1, 2, scratch);
            StoreOutputRows(a, lse, s, b, q0, acc, 1f / l0, 1f / l1, m0 + XMath.Log(l0), m1 + XMath.Log(l1), t, cp);
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
        acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(sh, v, pitch), ValueRows(sh, v + 8, pitch), ValueRows(sh, v + 16, pitch),
            ValueRows(sh, v + 24, pitch), 0, scratch);
        if (cp > 32)
            acc = WarpTile64.OutputTf32x3(acc, frag, ValueRows(sh, v + 32, pitch), ValueRows(sh, v + 40, pitch), ValueRows(sh, v + 48, pitch),
                ValueRows(sh, v + 56, pitch), 1, scratch);
        return acc;
    }

    static FragB ValueRows(ArrayView<float> sh, int at, int pitch) => new() { B0 = sh[at], B1 = sh[at + pitch] };

    /// <summary>The forward's end for a lane's rows q0 (= t0 + 16 warp + g) and q0 + 8: a = O / l at its channels 8 j + 2t
    /// and + 1 of each tile, and (lanes t = 0) lse.</summary>
    static void StoreOutputRows(ArrayView<float> a, ArrayView<float> lse, AttentionShape s, int b, int q0, WarpTile64 acc, float r0, float r1,
        float lse0, float lse1, int t, int cp)
    {
        int head = s.Out(b, 0, 0), c = 2 * t;
        StoreOutputTile(a, head, s, q0, c, acc, 1, 0, r0, r1);
        StoreOutputTile(a, head, s, q0, c + 8, acc, 1, 1, r0, r1);
        StoreOutputTile(a, head, s, q0, c + 16, acc, 1, 2, r0, r1);
        StoreOutputTile(a, head, s, q0, c + 24, acc, 1, 3, r0, r1);
        if (cp > 32)
        {
            StoreOutputTile(a, head, s, q0, c + 32, acc, 2, 0, r0, r1);
            StoreOutputTile(a, head, s, q0, c + 40, acc, 2, 1, r0, r1);
            StoreOutputTile(a, head, s, q0, c + 48, acc, 2, 2, r0, r1);
            StoreOutputTile(a, head, s, q0, c + 56, acc, 2, 3, r0, r1);
        }
        if (t != 0) return;
        if (q0 < s.T) lse[b * s.T + q0] = lse0;
        if (q0 + 8 < s.T) lse[b * s.T + q0 + 8] = lse1;
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
}
