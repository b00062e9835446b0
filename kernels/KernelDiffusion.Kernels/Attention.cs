using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Self-attention over T positions of qkv [N, 3C, T] with H heads of ch = C / H channels, as
/// guided-diffusion's QKVAttention (new order: q, k, v are the three C-channel thirds, head h their channels
/// h*ch..) and QKVAttentionLegacy (each head's q, k, v are 3 consecutive ch-channel runs).</summary>
public struct AttentionShape
{
    public int N, C, T, Heads, NewOrder;
    public readonly int Ch => C / Heads;
    public readonly int Batch => N * Heads;
    /// <summary>(ch^-1/4)^2: q and k are each scaled by ch^-1/4.</summary>
    public readonly float Alpha => 1f / MathF.Sqrt(Ch);

    /// <summary>Index in qkv [N, 3C, T] of channel c of q (part 0), k (1) or v (2) of head-batch b at position pos.</summary>
    public readonly int Qkv(int b, int part, int c, int pos)
    {
        int n = b / Heads, h = b % Heads;
        int chan = NewOrder != 0 ? part * C + h * Ch + c : h * 3 * Ch + part * Ch + c;
        return (n * 3 * C + chan) * T + pos;
    }

    /// <summary>Index in a [N, C, T] of channel c of head-batch b at position pos.</summary>
    public readonly int Out(int b, int c, int pos) => ((b / Heads) * C + (b % Heads) * Ch + c) * T + pos;
}

public enum AttentionVersion { V1Gemm = 1, V2Streaming = 2, V3SharedHead = 3, V4Tiled = 4, V6TiledScores = 6, V7TiledScoresDk = 7, V8WarpRows = 8, V9WarpRowsForward = 9, V10WarpRowsQueryGrad = 10, V11WarpRowsLean = 11,
    V12WarpRowsLeanQueryGrad = 12, V13Tf32x3Forward = 13, V14Tf32x3 = 14,
    V15PipelinedTf32x3 = 15 }

/// <summary>v2, streaming: one thread per query row keeps a running max, sum and output (online softmax), so the
/// T x T weights never exist; the backward recomputes them from the saved log-sum-exp: dQ by query row, dK and dV
/// by key column (no atomics, deterministic). Memory O(T) instead of O(T^2), at the price of recomputing q k.
/// v1, unfused: per head, S = alpha Q^T K [T, T] by GEMM, P = softmax(S) row-wise in place, a = V P^T; P is
/// kept for the backward: dP = dA^T V, dV = dA P, dS = P (dP - rowsum(P dP)), dQ = alpha K dS^T, dK = alpha Q dS.
/// Five GEMMs and two softmax passes, all existing kernels, batched over (sample, head) with two-level strides.
/// v3, for short sequences (the 7x7 attention of the fmnist models): one group of threads per (sample, head) holds
/// the head's q, k, v and weights in shared memory and does the whole forward in one launch, and the whole backward in
/// another, where v1 launches 3 and 5 kernels; it keeps P for the backward as v1 does.
/// v4, tiled (FlashAttention-2's schedule): v2's online softmax over tiles of queries and keys, each product a 4 x 4
/// register block per thread over shared tiles; keeps the log-sum-exp as v2 does.
/// (v5, v4 reading its blocks 16 bytes at a time, was slower than v4 at every measured shape and was removed:
/// bench/NOTES.md, "Attention".)
/// v6, tiled scores: v4's forward; in the backward v4's key side also stores dS [N*H, T, T], and dQ = alpha K dS^T is
/// one batched GEMM (v1's), so the backward computes 5 products where v4's computes 7 (its query side recomputes S and
/// dP); still deterministic (no atomics), for T^2 floats per head of scratch.
/// v7: v6 with dK = alpha Q dS also one batched GEMM, so the key side's tiles compute S, dP and dV only.
/// v8, warp rows (Attention.WarpRows.cs): v4's forward and v6's backward rebuilt so each warp owns whole rows of the
/// score tiles: the softmax within warps, one or two group barriers per streamed tile.
/// v9: v8's forward with v6's backward (to time each half of v8 against v6's in a whole step).
/// v10: v8 with dQ = alpha dS K by a warp-rows kernel over the stored dS, not by the batched GEMM.
/// v11, lean warp rows (Attention.WarpRowsLean.cs): v8 in less shared memory (one V^T buffer in the forward, queries
/// streaming 16 at a time in the key side), so four groups fit a multiprocessor at 64-channel heads. v12: v11 with v10's
/// dQ kernel. v13 (Attention.Tf32x3.cs): a forward on the tensor cores by 3xTF32 (fp32's accuracy), v11's backward; v14:
/// v13's forward and a key side on the tensor cores too (two kernels), dQ by GEMM. v15: v14 with its tiles copied by
/// cp.async under the products (FlashAttention-2's schedule). All three opt-in, not yet run on a GPU.</summary>
public static partial class Attention
{
    /// <summary>Element offset of q (0), k (1) or v (2) of head 0 of sample 0, and the stride between heads.</summary>
    static (int Offset, int HeadStride) Part(AttentionShape s, int part)
        => s.NewOrder != 0 ? (part * s.C * s.T, s.Ch * s.T) : (part * s.Ch * s.T, 3 * s.Ch * s.T);

    /// <summary>GEMM over the batch of heads; operand strides from the layouts: qkv (3C*T per sample), [N, C, T]
    /// (C*T per sample) and P [N*H, T, T].</summary>
    static GemmShape Shape(AttentionShape s, int m, int n, int k, bool ta, bool tb, int strideA, int outerA, int strideB, int outerB,
        int strideC, int outerC, float alpha) => new()
    {
        Batch = s.Batch, Split = s.Heads, M = m, N = n, K = k, TransA = ta ? 1 : 0, TransB = tb ? 1 : 0,
        StrideA = strideA, OuterA = outerA, StrideB = strideB, OuterB = outerB, StrideC = strideC, OuterC = outerC, Alpha = alpha,
    };

    static ArrayView<float> At(ArrayView<float> v, int offset) => v.SubView(offset, v.Length - offset);

    /// <summary>a [N, C, T] and the attention weights p [N*H, T, T].</summary>
    public static void Forward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> a, GemmRunner? gemm = null)
    {
        gemm ??= Gemm.At(acc);
        var (q, hs) = Part(s, 0);
        var (k, _) = Part(s, 1);
        var (v, _) = Part(s, 2);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T, ptOuter = s.Heads * tt, chT = s.Ch * s.T, cT = s.C * s.T;
        gemm(At(qkv, q), At(qkv, k), p, Shape(s, s.T, s.T, s.Ch, true, false, hs, qkvOuter, hs, qkvOuter, tt, ptOuter, s.Alpha));
        Softmax.Forward(acc, p, p, s.Batch * s.T, s.T, log: false);
        gemm(At(qkv, v), p, a, Shape(s, s.Ch, s.T, s.T, false, true, hs, qkvOuter, tt, ptOuter, chT, cT, 1));
    }

    /// <summary>dqkv [N, 3C, T] from da [N, C, T]; dp [N*H, T, T] is scratch.</summary>
    public static void Backward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> da,
        ArrayView<float> dp, ArrayView<float> dqkv, GemmRunner? gemm = null)
    {
        gemm ??= Gemm.At(acc);
        var (_, hs) = Part(s, 0);
        var (v, _) = Part(s, 2);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T, ptOuter = s.Heads * tt, chT = s.Ch * s.T, cT = s.C * s.T;
        gemm(da, At(qkv, v), dp, Shape(s, s.T, s.T, s.Ch, true, false, chT, cT, hs, qkvOuter, tt, ptOuter, 1));
        gemm(da, p, At(dqkv, v), Shape(s, s.Ch, s.T, s.T, false, false, chT, cT, tt, ptOuter, hs, qkvOuter, 1));
        Softmax.Backward(acc, p, dp, dp, s.Batch * s.T, s.T, log: false);
        GradFromScores(s, 0, qkv, dp, dqkv, gemm);
        GradFromScores(s, 1, qkv, dp, dqkv, gemm);
    }

    /// <summary>dQ = alpha K dS^T (part 0) or dK = alpha Q dS (part 1) per head, one batched GEMM (v1's backward; v6's dQ,
    /// v7's both), from dS [N*H, T, T] query-major.</summary>
    static void GradFromScores(AttentionShape s, int part, ArrayView<float> qkv, ArrayView<float> ds, ArrayView<float> dqkv, GemmRunner gemm)
    {
        var (to, hs) = Part(s, part);
        var (from, _) = Part(s, 1 - part);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T;
        gemm(At(qkv, from), ds, At(dqkv, to), Shape(s, s.Ch, s.T, s.T, false, part == 0, hs, qkvOuter, tt, s.Heads * tt, hs, qkvOuter, s.Alpha));
    }

    // ---- v2: streaming ----

    /// <summary>a[:, t] of head-batch b, and lse[b, t] = max + log(sum exp) of its scores.</summary>
    static void StreamForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s)
    {
        int rows = s.Batch * s.T, stride = Grid.DimX * Group.DimX;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int b = r / s.T, t = r % s.T;
            float m = float.NegativeInfinity, l = 0;
            for (int c = 0; c < s.Ch; c++) a[s.Out(b, c, t)] = 0f;
            for (int u = 0; u < s.T; u++)
            {
                float sc = 0;
                for (int c = 0; c < s.Ch; c++) sc += qkv[s.Qkv(b, 0, c, t)] * qkv[s.Qkv(b, 1, c, u)];
                sc *= alpha;
                float mNew = XMath.Max(m, sc), rescale = XMath.Exp(m - mNew), p = XMath.Exp(sc - mNew);
                l = l * rescale + p;
                for (int c = 0; c < s.Ch; c++)
                {
                    int o = s.Out(b, c, t);
                    a[o] = a[o] * rescale + p * qkv[s.Qkv(b, 2, c, u)];
                }
                m = mNew;
            }
            float inv = 1f / l;
            for (int c = 0; c < s.Ch; c++) a[s.Out(b, c, t)] *= inv;
            lse[r] = m + XMath.Log(l);
        }
    }

    /// <summary>delta[b, t] = sum_c da[c, t] a[c, t] (= sum_u P dP, the softmax backward's row term).</summary>
    static void StreamDeltaKernel(ArrayView<float> a, ArrayView<float> da, ArrayView<float> delta, AttentionShape s)
    {
        int rows = s.Batch * s.T, stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int b = r / s.T, t = r % s.T;
            float acc = 0;
            for (int c = 0; c < s.Ch; c++) acc += da[s.Out(b, c, t)] * a[s.Out(b, c, t)];
            delta[r] = acc;
        }
    }

    /// <summary>P[t, u] = exp(alpha q[:, t] . k[:, u] - lse[t]), from the forward's saved log-sum-exp.</summary>
    static float Weight(ArrayView<float> qkv, ArrayView<float> lse, AttentionShape s, int b, int t, int u, float alpha)
    {
        float sc = 0;
        for (int c = 0; c < s.Ch; c++) sc += qkv[s.Qkv(b, 0, c, t)] * qkv[s.Qkv(b, 1, c, u)];
        return XMath.Exp(sc * alpha - lse[b * s.T + t]);
    }

    /// <summary>alpha dS[t, u] = alpha P[t, u] (dP[t, u] - delta[t]) with dP = sum_c da[c, t] v[c, u].</summary>
    static float ScoreGrad(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> delta, AttentionShape s, int b, int t, int u, float p, float alpha)
    {
        float dp = 0;
        for (int c = 0; c < s.Ch; c++) dp += da[s.Out(b, c, t)] * qkv[s.Qkv(b, 2, c, u)];
        return alpha * p * (dp - delta[b * s.T + t]);
    }

    /// <summary>dq[:, t] = alpha sum_u dS[t, u] k[:, u], one query row per thread.</summary>
    static void StreamQueryGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s)
    {
        int rows = s.Batch * s.T, stride = Grid.DimX * Group.DimX;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int b = r / s.T, t = r % s.T;
            for (int c = 0; c < s.Ch; c++) dqkv[s.Qkv(b, 0, c, t)] = 0f;
            for (int u = 0; u < s.T; u++)
            {
                float ds = ScoreGrad(qkv, da, delta, s, b, t, u, Weight(qkv, lse, s, b, t, u, alpha), alpha);
                for (int c = 0; c < s.Ch; c++) dqkv[s.Qkv(b, 0, c, t)] += ds * qkv[s.Qkv(b, 1, c, u)];
            }
        }
    }

    /// <summary>dk[:, u] = alpha sum_t dS[t, u] q[:, t] and dv[:, u] = sum_t P[t, u] da[:, t], one key column per thread.</summary>
    static void StreamKeyValueGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s)
    {
        int rows = s.Batch * s.T, stride = Grid.DimX * Group.DimX;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int b = r / s.T, u = r % s.T;
            for (int c = 0; c < s.Ch; c++)
            {
                dqkv[s.Qkv(b, 1, c, u)] = 0f;
                dqkv[s.Qkv(b, 2, c, u)] = 0f;
            }
            for (int t = 0; t < s.T; t++)
            {
                float p = Weight(qkv, lse, s, b, t, u, alpha), ds = ScoreGrad(qkv, da, delta, s, b, t, u, p, alpha);
                for (int c = 0; c < s.Ch; c++)
                {
                    dqkv[s.Qkv(b, 1, c, u)] += ds * qkv[s.Qkv(b, 0, c, t)];
                    dqkv[s.Qkv(b, 2, c, u)] += p * da[s.Out(b, c, t)];
                }
            }
        }
    }

    // ---- v3: one group per (sample, head), everything in shared memory ----

    /// <summary>Shared memory of a v3 group, in floats (48 KB, the most a kernel may allocate statically on CUDA).</summary>
    public const int V3SharedFloats = 12288;

    /// <summary>Whether a head fits v3: the backward keeps q, k, v, da [ch, T] and two [T, T] arrays.</summary>
    public static bool FitsV3(AttentionShape s) => 4L * s.Ch * s.T + 2L * s.T * s.T <= V3SharedFloats;

    /// <summary>Copies head b's part (0 q, 1 k, 2 v) into sh[at + c * T + t].</summary>
    static void LoadHead(ArrayView<float> qkv, ArrayView<float> sh, int at, AttentionShape s, int b, int part)
    {
        int threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        for (int e = Group.IdxX; e < s.Ch * s.T; e += threads)
        {
            int c = e / s.T, t = e - c * s.T;
            sh[at + e] = qkv[s.Qkv(b, part, c, t)];
        }
    }

    /// <summary>v3 forward: S = alpha Q^T K, P = softmax(S) row by row (kept in shared memory and written to p for the
    /// backward), a = V P^T.</summary>
    static void SharedForwardKernel(ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> a, AttentionShape s)
    {
        int threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        var sh = SharedMemory.Allocate<float>(V3SharedFloats);
        int ct = s.Ch * s.T, tt = s.T * s.T, q = 0, k = ct, v = 2 * ct, w = 3 * ct;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int b = Grid.IdxX; b < s.Batch; b += Grid.DimX)
        {
            LoadHead(qkv, sh, q, s, b, 0);
            LoadHead(qkv, sh, k, s, b, 1);
            LoadHead(qkv, sh, v, s, b, 2);
            Group.Barrier();
            for (int e = Group.IdxX; e < tt; e += threads)
            {
                int t = e / s.T, u = e - t * s.T;
                float acc = 0;
                for (int c = 0; c < s.Ch; c++) acc += sh[q + c * s.T + t] * sh[k + c * s.T + u];
                sh[w + e] = alpha * acc;
            }
            Group.Barrier();
            for (int t = Group.IdxX; t < s.T; t += threads)
            {
                float max = float.NegativeInfinity, sum = 0;
                for (int u = 0; u < s.T; u++) max = XMath.Max(max, sh[w + t * s.T + u]);
                for (int u = 0; u < s.T; u++)
                {
                    float x = XMath.Exp(sh[w + t * s.T + u] - max);
                    sh[w + t * s.T + u] = x;
                    sum += x;
                }
                float inv = 1f / sum;
                for (int u = 0; u < s.T; u++)
                {
                    float pr = sh[w + t * s.T + u] * inv;
                    sh[w + t * s.T + u] = pr;
                    p[b * tt + t * s.T + u] = pr;
                }
            }
            Group.Barrier();
            for (int e = Group.IdxX; e < ct; e += threads)
            {
                int c = e / s.T, t = e - c * s.T;
                float acc = 0;
                for (int u = 0; u < s.T; u++) acc += sh[w + t * s.T + u] * sh[v + c * s.T + u];
                a[s.Out(b, c, t)] = acc;
            }
            Group.Barrier();
        }
    }

    /// <summary>v3 backward from the saved P: dV = dA P, dP = dA^T V, dS = P (dP - rowsum(P dP)), dQ = alpha K dS^T,
    /// dK = alpha Q dS, all for one head in one group.</summary>
    static void SharedBackwardKernel(ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> da, ArrayView<float> dqkv, AttentionShape s)
    {
        int threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        var sh = SharedMemory.Allocate<float>(V3SharedFloats);
        int ct = s.Ch * s.T, tt = s.T * s.T, q = 0, k = ct, v = 2 * ct, g = 3 * ct, pw = 4 * ct, ds = 4 * ct + tt;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int b = Grid.IdxX; b < s.Batch; b += Grid.DimX)
        {
            LoadHead(qkv, sh, q, s, b, 0);
            LoadHead(qkv, sh, k, s, b, 1);
            LoadHead(qkv, sh, v, s, b, 2);
            for (int e = Group.IdxX; e < ct; e += threads)
            {
                int c = e / s.T, t = e - c * s.T;
                sh[g + e] = da[s.Out(b, c, t)];
            }
            for (int e = Group.IdxX; e < tt; e += threads) sh[pw + e] = p[b * tt + e];
            Group.Barrier();
            // dP[t, u] = sum_c da[c, t] v[c, u], kept in ds; dV[c, u] = sum_t P[t, u] da[c, t].
            for (int e = Group.IdxX; e < tt; e += threads)
            {
                int t = e / s.T, u = e - t * s.T;
                float acc = 0;
                for (int c = 0; c < s.Ch; c++) acc += sh[g + c * s.T + t] * sh[v + c * s.T + u];
                sh[ds + e] = acc;
            }
            for (int e = Group.IdxX; e < ct; e += threads)
            {
                int c = e / s.T, u = e - c * s.T;
                float acc = 0;
                for (int t = 0; t < s.T; t++) acc += sh[pw + t * s.T + u] * sh[g + c * s.T + t];
                dqkv[s.Qkv(b, 2, c, u)] = acc;
            }
            Group.Barrier();
            // dS[t, u] = P[t, u] (dP[t, u] - sum_u' P[t, u'] dP[t, u']), a row per thread.
            for (int t = Group.IdxX; t < s.T; t += threads)
            {
                float row = 0;
                for (int u = 0; u < s.T; u++) row += sh[pw + t * s.T + u] * sh[ds + t * s.T + u];
                for (int u = 0; u < s.T; u++) sh[ds + t * s.T + u] = sh[pw + t * s.T + u] * (sh[ds + t * s.T + u] - row);
            }
            Group.Barrier();
            // dQ[c, t] = alpha sum_u dS[t, u] k[c, u]; dK[c, u] = alpha sum_t dS[t, u] q[c, t].
            for (int e = Group.IdxX; e < ct; e += threads)
            {
                int c = e / s.T, x = e - c * s.T;
                float dq = 0, dk = 0;
                for (int y = 0; y < s.T; y++)
                {
                    dq += sh[ds + x * s.T + y] * sh[k + c * s.T + y];
                    dk += sh[ds + y * s.T + x] * sh[q + c * s.T + y];
                }
                dqkv[s.Qkv(b, 0, c, x)] = alpha * dq;
                dqkv[s.Qkv(b, 1, c, x)] = alpha * dk;
            }
            Group.Barrier();
        }
    }

    // ---- v4: tiled, FlashAttention-2's schedule on SIMT cores ----

    /// <summary>The shape of a v4 group: TY x TX threads. Each thread keeps a 4 x 4 register block (Block4) of every
    /// product tile, so a tile is 4 TY rows (queries, or keys in the key-side backward) by 4 TX columns.</summary>
    public interface ITileShape
    {
        int TY { get; }
        int TX { get; }
    }

    /// <summary>A v4 group's shape chosen at run time (Tiles: what the shared memory allows).</summary>
    public struct AttentionTiles : ITileShape
    {
        public int TY { readonly get; init; }
        public int TX { readonly get; init; }
        public readonly int Rows => 4 * TY;
        public readonly int Cols => 4 * TX;
        /// <summary>Channels rounded up to whole chunks of 4 TX columns: the products over channels run chunk by chunk.</summary>
        public readonly int Padded(int ch) => PaddedChannels(ch, Cols);
    }

    /// <summary>The 16 x 8 shape GPUs get, fixed at compile time: the kernels built on it (the *16x8Kernel entries) have
    /// every shared-memory stride of their products as a constant, which ptxas folds into the loads' offsets
    /// (TileProduct: 117 instructions per 64 FMAs in the forward's scores, against 165 with the shape a run-time value).</summary>
    public struct Tiles16x8 : ITileShape
    {
        public readonly int TY => 16;
        public readonly int TX => 8;
    }

    /// <summary>ch rounded up to whole chunks of <paramref name="cols"/>.</summary>
    static int PaddedChannels(int ch, int cols) => (ch + cols - 1) / cols * cols;

    /// <summary>Shared memory, in floats, of v4's forward (0), query-side backward (1) and key-side backward (2) per
    /// group; pass 3: v7's key side, without dK's accumulators (at fmnist's heads 50 KB: 4 groups fit a multiprocessor,
    /// against 3 at pass 2's 58.6). Padded strides (+1) keep a warp's column reads of a row-major region on distinct banks.</summary>
    public static int TiledSharedFloats(AttentionTiles f, int ch, int pass)
    {
        int r = f.Rows, c = f.Cols, cp = f.Padded(ch);
        return pass switch
        {
            0 => cp * r + 2 * cp * (c + 1) + c * (r + 1) + r * (cp + 1) + 3 * r + 2 * f.TY * f.TX,
            1 => 2 * cp * r + 2 * cp * (c + 1) + 2 * c * (r + 1) + r * (cp + 1) + 2 * r,
            _ => 2 * cp * r + 2 * cp * (c + 1) + 2 * c * (r + 1) + (pass == 2 ? 2 : 1) * r * (cp + 1) + 2 * c,   // dK and dV, or dV
        };
    }

    // v4 asks for its shared memory dynamically, sized to the tiles (so small heads let more groups share a
    // multiprocessor), up to SharedMemoryLimit.MaxBytes: on CUDA the device's opt-in maximum (its kernels are loaded
    // through SharedMemoryLimit.Raise), elsewhere v3's 48 KB. At 48 KB a 32-channel head's backward (the fmnist UNet's)
    // fits only 8 x 8 groups (49 and 57 KB at 16 x 8), a 64-channel head's key side only 8 x 4.

    /// <summary>The largest group up to 128 threads (TY = 2 TX or TX) whose tiles fit the shared memory (the device's
    /// limit, or <paramref name="limitBytes"/> where given), or null.</summary>
    public static AttentionTiles? Tiles(Accelerator acc, AttentionShape s, int pass, int? limitBytes = null)
    {
        int limit = (limitBytes ?? SharedMemoryLimit.MaxBytes(acc)) / sizeof(float);
        for (int g = Launch.PowerOfTwoGroup(acc, 128); g >= 1; g /= 2)
        {
            int tx = 1;
            while (tx * tx * 4 <= g) tx *= 2;   // TX = TY or TY / 2: 128 threads are 16 x 8
            var f = new AttentionTiles { TY = g / tx, TX = tx };
            if (TiledSharedFloats(f, s.Ch, pass) <= limit) return f;
        }
        return null;
    }

    /// <summary>Copies positions pos0 .. pos0 + width - 1 of part (0 q, 1 k, 2 v of qkv; 3 an [N, C, T] array such as
    /// da) of head-batch b into sh[at + c stride + x], zero past the positions and for channels ch .. cp - 1. Four
    /// entries a step, their loads issued before their stores: a store waits for its load, so one entry at a time left
    /// each thread one load in flight.</summary>
    static void LoadTile(ArrayView<float> src, ArrayView<float> sh, int at, int stride, AttentionShape s, int b, int part, int pos0, int width, int cp)
    {
        int head = HeadAt(s, b, part, pos0);
        for (var w = new TileWalk(width); w.Row < cp;)
        {
            var w0 = w;
            w.Next();
            var w1 = w;
            w.Next();
            var w2 = w;
            w.Next();
            var w3 = w;
            w.Next();
            float y0 = Fetch(src, head, s, w0.Row, w0.Col, pos0 + w0.Col < s.T),
                y1 = Fetch(src, head, s, w1.Row, w1.Col, pos0 + w1.Col < s.T),
                y2 = Fetch(src, head, s, w2.Row, w2.Col, pos0 + w2.Col < s.T),
                y3 = Fetch(src, head, s, w3.Row, w3.Col, pos0 + w3.Col < s.T);
            sh[at + w0.Row * stride + w0.Col] = y0;   // w0.Row < cp: the loop's condition
            if (w1.Row < cp) sh[at + w1.Row * stride + w1.Col] = y1;
            if (w2.Row < cp) sh[at + w2.Row * stride + w2.Col] = y2;
            if (w3.Row < cp) sh[at + w3.Row * stride + w3.Col] = y3;
        }
    }

    /// <summary>Element offset of position pos0, channel 0 of part (0 q, 1 k, 2 v of qkv; 3 an [N, C, T] array such as da)
    /// of head-batch b: a head's channels lie T apart in both layouts.</summary>
    static int HeadAt(AttentionShape s, int b, int part, int pos0) => part < 3 ? s.Qkv(b, part, 0, pos0) : s.Out(b, 0, pos0);

    /// <summary>Channel c at position x of a head (its channels T apart from head), or 0 past the channels (and so past
    /// the padded ones) or where <paramref name="inside"/> (the position within T) is false.</summary>
    static float Fetch(ArrayView<float> src, int head, AttentionShape s, int c, int x, bool inside) => inside && c < s.Ch ? src[head + c * s.T + x] : 0f;

    /// <summary>A group's walk over a tile's entries (row, column), entry row x width + column for e = thread, thread +
    /// group size, ...: the digits advance by carries, where dividing e by width for each entry would cost a division.</summary>
    struct TileWalk
    {
        public int Row, Col;
        readonly int width, rowStep, colStep;

        public TileWalk(int width)
        {
            this.width = width;
            Row = Group.IdxX / width;
            Col = Group.IdxX - Row * width;
            rowStep = Group.DimX / width;
            colStep = Group.DimX - rowStep * width;
        }

        public void Next()
        {
            Row += rowStep;
            Col += colStep;
            if (Col >= width)
            {
                Col -= width;
                Row++;
            }
        }
    }

    /// <summary>c(i, j) += sum over x &lt; k of A(x, i) B(x, j), with A(x, i) at sh[a + x aK + i aStep] and B(x, j) at
    /// sh[b + x bK + j bStep]: 8 shared reads for 16 multiply-adds.</summary>
    static Block4 TileProduct(ArrayView<float> sh, int a, int aK, int aStep, int b, int bK, int bStep, int k)
    {
        var c = default(Block4);
        for (int x = 0; x < k; x++)
        {
            // A view at each step's first values: where the steps are constants (Tiles16x8) the four loads of each
            // operand are one address plus offsets ptxas folds into the instructions.
            ArrayView<float> va = sh.SubView(a + x * aK), vb = sh.SubView(b + x * bK);
            c = Block4.Fma(c, va[0], va[aStep], va[2 * aStep], va[3 * aStep], vb[0], vb[bStep], vb[2 * bStep], vb[3 * bStep]);
        }
        return c;
    }

    /// <summary>sh[at + i rowStep + j colStep] = keep_i sh[..] + c(i, j) (keep 0 stores: the old value is not read,
    /// so uninitialised memory cannot leak in).</summary>
    static void PutBlock(ArrayView<float> sh, int at, int rowStep, int colStep, Block4 c, float k0, float k1, float k2, float k3)
    {
        PutRow(sh, at, colStep, k0, c.C00, c.C01, c.C02, c.C03);
        PutRow(sh, at + rowStep, colStep, k1, c.C10, c.C11, c.C12, c.C13);
        PutRow(sh, at + 2 * rowStep, colStep, k2, c.C20, c.C21, c.C22, c.C23);
        PutRow(sh, at + 3 * rowStep, colStep, k3, c.C30, c.C31, c.C32, c.C33);
    }

    static void PutRow(ArrayView<float> sh, int at, int step, float keep, float x0, float x1, float x2, float x3)
    {
        if (keep == 0f)
        {
            sh[at] = x0; sh[at + step] = x1; sh[at + 2 * step] = x2; sh[at + 3 * step] = x3;
            return;
        }
        sh[at] = keep * sh[at] + x0;
        sh[at + step] = keep * sh[at + step] + x1;
        sh[at + 2 * step] = keep * sh[at + 2 * step] + x2;
        sh[at + 3 * step] = keep * sh[at + 3 * step] + x3;
    }

    /// <summary>acc[i][c] = keep_i acc[i][c] + sum over x &lt; k of A(x, i) B(x, c) for the thread's rows i and every
    /// channel c &lt; cp, a chunk of 4 TX channels at a time: A(x, i) at sh[a + x aK + i], B(x, c) at sh[b + c bStride + x],
    /// acc a [rows][cp + 1] region. Each thread owns its entries, so chunks need no barrier between them.</summary>
    static void AccumulateChannels<TT>(ArrayView<float> sh, TT f, int ty, int tx, int a, int aK, int b, int bStride, int k,
        int acc, int cp, float k0, float k1, float k2, float k3) where TT : struct, ITileShape
    {
        for (int c0 = 0; c0 < cp; c0 += 4 * f.TX)
        {
            var x = TileProduct(sh, a + ty, aK, f.TY, b + (c0 + tx) * bStride, 1, f.TX * bStride, k);
            PutBlock(sh, acc + ty * (cp + 1) + c0 + tx, f.TY * (cp + 1), f.TX, x, k0, k1, k2, k3);
        }
    }

    /// <summary>The backward's scores of a tile pair: S = A1^T B1 into sc and dP = A2^T B2 into dp (rows: the tile's 4 TY
    /// positions, A(x, i) at sh[a + x aK + i]; columns: the streamed 4 TX, B(x, j) at sh[b + x bK + j]; entry (i, j) at
    /// i + j (rows + 1)), then P and dS in place of them (ScoreGrads).</summary>
    static void ScoreGradTile<TT>(ArrayView<float> sh, TT f, int ty, int tx, int sc, int dp, int a1, int a2, int aK, int b1, int b2, int bK,
        int ch, bool columnsAreQueries, int ls, int dl, int column0, int row0, int T, float alpha) where TT : struct, ITileShape
    {
        int stride = 4 * f.TY + 1;
        PutBlock(sh, sc + ty + tx * stride, f.TY, f.TX * stride, TileProduct(sh, a1 + ty, aK, f.TY, b1 + tx, bK, f.TX, ch), 0, 0, 0, 0);
        PutBlock(sh, dp + ty + tx * stride, f.TY, f.TX * stride, TileProduct(sh, a2 + ty, aK, f.TY, b2 + tx, bK, f.TX, ch), 0, 0, 0, 0);
        Group.Barrier();
        ScoreGrads(sh, sc, dp, stride, 4 * f.TX, 4 * f.TY, columnsAreQueries, ls, dl, column0, row0, T, alpha);
        Group.Barrier();
    }

    /// <summary>v4 forward: one group per (head-batch, tile of 4 TY queries) streams the keys in tiles of 4 TX, keeping
    /// a running row max m, sum l and output O (online softmax), so the T x T weights never exist; writes a = O / l and
    /// lse = m + log l for the backward.</summary>
    [LaunchBounds(128, 4)]   // at 5 groups (102 registers) ptxas spills 8 B here; the 16 x 8 entry does not
    static void TiledForwardKernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, AttentionTiles f)
        => ForwardTiles(qkv, a, lse, s, f);

    /// <summary>The forward at 16 x 8, the shape fixed at compile time (Tiles16x8).</summary>
    [LaunchBounds(128, 5)]
    static void TiledForward16x8Kernel(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s)
        => ForwardTiles(qkv, a, lse, s, default(Tiles16x8));

    static void ForwardTiles<TT>(ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse, AttentionShape s, TT f)
        where TT : struct, ITileShape
    {
        int threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        var sh = SharedMemory.GetDynamic<float>();
        int br = 4 * f.TY, bc = 4 * f.TX, cp = PaddedChannels(s.Ch, bc), ty = Group.IdxX / f.TX, tx = Group.IdxX - ty * f.TX;
        // Q [cp][br]; K, V [cp][bc + 1]; P [bc][br + 1] (key-major: A of P V); O [br][cp + 1]; per row m, l, rescale;
        // per thread a partial max and sum.
        int q = 0, k = q + cp * br, v = k + cp * (bc + 1), p = v + cp * (bc + 1), o = p + bc * (br + 1), m = o + br * (cp + 1), l = m + br, r = l + br,
            x = r + br;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int tiles = (s.T + br - 1) / br;
        for (int w = Grid.IdxX; w < s.Batch * tiles; w += Grid.DimX)
        {
            int b = w / tiles, t0 = (w - b * tiles) * br;
            LoadTile(qkv, sh, q, br, s, b, 0, t0, br, cp);
            for (int e = Group.IdxX; e < br; e += threads)
            {
                sh[m + e] = float.NegativeInfinity;
                sh[l + e] = 0f;
            }
            for (int u0 = 0; u0 < s.T; u0 += bc)
            {
                LoadTile(qkv, sh, k, bc + 1, s, b, 1, u0, bc, cp);
                LoadTile(qkv, sh, v, bc + 1, s, b, 2, u0, bc, cp);
                Group.Barrier();
                var scores = TileProduct(sh, q + ty, br, f.TY, k + tx, bc + 1, f.TX, s.Ch);
                PutBlock(sh, p + ty + tx * (br + 1), f.TY, f.TX * (br + 1), scores, 0, 0, 0, 0);
                Group.Barrier();
                // Row by row: the new max, P = exp(alpha S - max) (0 past the keys), how much of the old O and l to keep.
                // 16 x 8 and 8 x 8 groups have twice as many threads as rows: two threads share a row's keys and combine
                // their maxima and sums through shared memory (x). They then make one pass, so all meet the barriers.
                int valid = XMath.Min(bc, s.T - u0), splits = XMath.Max(1, threads / br), span = bc / splits;
                for (int i = Group.IdxX / splits; i < br; i += threads / splits)
                {
                    int first = (Group.IdxX % splits) * span, end = XMath.Min(first + span, valid), at = p + first * (br + 1) + i, u, y;
                    float old = sh[m + i], raw = float.NegativeInfinity, sum = 0;
                    for (u = first, y = at; u < end; u++, y += br + 1) raw = XMath.Max(raw, sh[y]);
                    if (splits > 1)
                    {
                        sh[x + Group.IdxX] = raw;
                        Group.Barrier();
                        for (int j = 0; j < splits; j++) raw = XMath.Max(raw, sh[x + i * splits + j]);
                    }
                    float max = XMath.Max(old, alpha * raw);   // alpha > 0
                    for (u = first, y = at; u < end; u++, y += br + 1)
                    {
                        float e = XMath.Exp(alpha * sh[y] - max);
                        sh[y] = e;
                        sum += e;
                    }
                    for (; u < first + span; u++, y += br + 1) sh[y] = 0f;   // keys past T
                    if (splits > 1)
                    {
                        sh[x + threads + Group.IdxX] = sum;
                        Group.Barrier();
                        sum = 0;
                        for (int j = 0; j < splits; j++) sum += sh[x + threads + i * splits + j];
                    }
                    if (first == 0)
                    {
                        float keep = XMath.Exp(old - max);   // 0 on the first tile (old = -inf)
                        sh[r + i] = keep;
                        sh[l + i] = keep * sh[l + i] + sum;
                        sh[m + i] = max;
                    }
                }
                Group.Barrier();
                // O = keep O + P V, chunk by chunk of channels; each thread owns its O entries, so no barrier between chunks.
                AccumulateChannels(sh, f, ty, tx, p, br + 1, v, bc + 1, bc, o, cp,   // keep 0 on the first tile
                    sh[r + ty], sh[r + ty + f.TY], sh[r + ty + 2 * f.TY], sh[r + ty + 3 * f.TY]);
                Group.Barrier();
            }
            int head = s.Out(b, 0, t0);
            for (var e = new TileWalk(br); e.Row < s.Ch; e.Next())
                if (t0 + e.Col < s.T) a[head + e.Row * s.T + e.Col] = sh[o + e.Col * (cp + 1) + e.Row] / sh[l + e.Col];
            for (int i = Group.IdxX; i < br; i += threads)
                if (t0 + i < s.T) lse[b * s.T + t0 + i] = sh[m + i] + XMath.Log(sh[l + i]);
            Group.Barrier();
        }
    }

    /// <summary>dS = P (dP - delta) in place over a stored tile pair: S (raw scores) becomes P and dP becomes dS, for
    /// the tile's entries at sh[s + x (stride) + y]; x indexes the columns of the stored layout, y its rows. Entries past
    /// the queries or keys get 0.</summary>
    static void ScoreGrads(ArrayView<float> sh, int sAt, int dpAt, int stride, int xs, int ys, bool xIsQuery, int lseAt, int deltaAt,
        int x0, int y0, int T, float alpha)
    {
        for (var w = new TileWalk(ys); w.Row < xs; w.Next())
        {
            int x = w.Row, y = w.Col, at = x * stride + y, qi = xIsQuery ? x : y;
            bool inside = x0 + x < T && y0 + y < T;
            float pr = inside ? XMath.Exp(alpha * sh[sAt + at] - sh[lseAt + qi]) : 0f;
            sh[sAt + at] = pr;
            sh[dpAt + at] = pr * (sh[dpAt + at] - sh[deltaAt + qi]);
        }
    }

    /// <summary>Copies lse and delta of queries t0 .. t0 + width - 1 of head-batch b into sh (0 past the queries).</summary>
    static void LoadRowTerms(ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> sh, int lseAt, int deltaAt, AttentionShape s, int b, int t0, int width)
    {
        int threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        for (int i = Group.IdxX; i < width; i += threads)
        {
            bool inside = t0 + i < s.T;
            sh[lseAt + i] = inside ? lse[b * s.T + t0 + i] : 0f;
            sh[deltaAt + i] = inside ? delta[b * s.T + t0 + i] : 0f;
        }
    }

    /// <summary>Writes scale acc[i][c] (a [rows][cp + 1] region) to part (0 q, 1 k, 2 v) of dqkv at positions pos0 ..,
    /// a position per thread within a channel so the writes coalesce.</summary>
    static void StoreTile(ArrayView<float> sh, int acc, int cp, ArrayView<float> dqkv, AttentionShape s, int b, int part, int pos0, int rows, float scale)
    {
        int head = s.Qkv(b, part, 0, pos0);
        for (var w = new TileWalk(rows); w.Row < s.Ch; w.Next())
            if (pos0 + w.Col < s.T) dqkv[head + w.Row * s.T + w.Col] = scale * sh[acc + w.Col * (cp + 1) + w.Row];
    }

    /// <summary>v4 backward, query side: one group per (head-batch, tile of 4 TY queries) streams the keys, recomputing
    /// S = Q^T K and dP = dA^T V, and accumulates dQ = alpha dS K^T. The key side is its own launch, so no output is
    /// written by two groups: no atomics, the same result every run.</summary>
    [LaunchBounds(128, 4)]   // at 5 groups ptxas spills 36 B here since the tile loads take four entries a step
    static void TiledQueryGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s, AttentionTiles f)
        => QueryGradTiles(qkv, da, lse, delta, dqkv, s, f);

    /// <summary>The query side at 16 x 8, the shape fixed at compile time (Tiles16x8).</summary>
    [LaunchBounds(128, 5)]
    static void TiledQueryGrad16x8Kernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s)
        => QueryGradTiles(qkv, da, lse, delta, dqkv, s, default(Tiles16x8));

    static void QueryGradTiles<TT>(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s, TT f) where TT : struct, ITileShape
    {
        var sh = SharedMemory.GetDynamic<float>();
        int br = 4 * f.TY, bc = 4 * f.TX, cp = PaddedChannels(s.Ch, bc), ty = Group.IdxX / f.TX, tx = Group.IdxX - ty * f.TX;
        // Q, dA [cp][br]; K, V [cp][bc + 1]; S, dP [bc][br + 1]; dQ [br][cp + 1]; lse, delta [br].
        int q = 0, g = cp * br, k = 2 * cp * br, v = k + cp * (bc + 1), sc = v + cp * (bc + 1), dp = sc + bc * (br + 1),
            dq = dp + bc * (br + 1), ls = dq + br * (cp + 1), dl = ls + br;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int tiles = (s.T + br - 1) / br;
        for (int w = Grid.IdxX; w < s.Batch * tiles; w += Grid.DimX)
        {
            int b = w / tiles, t0 = (w - b * tiles) * br;
            LoadTile(qkv, sh, q, br, s, b, 0, t0, br, cp);
            LoadTile(da, sh, g, br, s, b, 3, t0, br, cp);
            LoadRowTerms(lse, delta, sh, ls, dl, s, b, t0, br);
            for (int u0 = 0; u0 < s.T; u0 += bc)
            {
                LoadTile(qkv, sh, k, bc + 1, s, b, 1, u0, bc, cp);
                LoadTile(qkv, sh, v, bc + 1, s, b, 2, u0, bc, cp);
                Group.Barrier();
                ScoreGradTile(sh, f, ty, tx, sc, dp, q, g, br, k, v, bc + 1, s.Ch, false, ls, dl, u0, t0, s.T, alpha);
                float keep = u0 == 0 ? 0f : 1f;
                AccumulateChannels(sh, f, ty, tx, dp, br + 1, k, bc + 1, bc, dq, cp, keep, keep, keep, keep);
                Group.Barrier();
            }
            StoreTile(sh, dq, cp, dqkv, s, b, 0, t0, br, alpha);
            Group.Barrier();
        }
    }

    /// <summary>v4 backward, key side: one group per (head-batch, tile of 4 TY keys) streams the queries, recomputing
    /// S^T = K^T Q, P^T = exp(alpha S^T - lse) and dP^T = V^T dA, and accumulates dV = dA P and dK = alpha Q dS.</summary>
    [LaunchBounds(128, 4)]   // at 5 groups (96 registers) ptxas spills 28 B here; the other two do not
    static void TiledKeyValueGradKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s, AttentionTiles f)
        => KeyValueGradTiles(qkv, da, lse, delta, dqkv, s, f, dqkv, false, true);

    /// <summary>The key side at 16 x 8, the shape fixed at compile time (Tiles16x8).</summary>
    [LaunchBounds(128, 4)]
    static void TiledKeyValueGrad16x8Kernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s)
        => KeyValueGradTiles(qkv, da, lse, delta, dqkv, s, default(Tiles16x8), dqkv, false, true);

    /// <summary>v6's and v7's key side: v4's, also storing dS [N*H, T, T] (scores) for the GEMMs that make dQ (and dK
    /// where <paramref name="keyGrad"/> is 0: v7).</summary>
    [LaunchBounds(128, 4)]
    static void TiledKeyValueScoresKernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, ArrayView<float> scores, int keyGrad, AttentionShape s, AttentionTiles f)
        => KeyValueGradTiles(qkv, da, lse, delta, dqkv, s, f, scores, true, keyGrad != 0);

    /// <summary>v6's and v7's key side at 16 x 8 (Tiles16x8).</summary>
    [LaunchBounds(128, 4)]
    static void TiledKeyValueScores16x8Kernel(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, ArrayView<float> scores, int keyGrad, AttentionShape s)
        => KeyValueGradTiles(qkv, da, lse, delta, dqkv, s, default(Tiles16x8), scores, true, keyGrad != 0);

    static void KeyValueGradTiles<TT>(ArrayView<float> qkv, ArrayView<float> da, ArrayView<float> lse, ArrayView<float> delta,
        ArrayView<float> dqkv, AttentionShape s, TT f, ArrayView<float> scores, bool storeScores, bool keyGrad) where TT : struct, ITileShape
    {
        var sh = SharedMemory.GetDynamic<float>();
        int bk = 4 * f.TY, bq = 4 * f.TX, cp = PaddedChannels(s.Ch, bq), ty = Group.IdxX / f.TX, tx = Group.IdxX - ty * f.TX;
        // K, V [cp][bk]; Q, dA [cp][bq + 1]; S^T, dP^T [bq][bk + 1] (query-major: A of the products over queries);
        // dK (not in v7), dV [bk][cp + 1]; lse, delta [bq].
        int k = 0, v = cp * bk, q = 2 * cp * bk, g = q + cp * (bq + 1), sc = g + cp * (bq + 1), dp = sc + bq * (bk + 1),
            dk = dp + bq * (bk + 1), dv = dk + (keyGrad ? bk * (cp + 1) : 0), ls = dv + bk * (cp + 1), dl = ls + bq;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        int tiles = (s.T + bk - 1) / bk;
        for (int w = Grid.IdxX; w < s.Batch * tiles; w += Grid.DimX)
        {
            int b = w / tiles, u0 = (w - b * tiles) * bk;
            LoadTile(qkv, sh, k, bk, s, b, 1, u0, bk, cp);
            LoadTile(qkv, sh, v, bk, s, b, 2, u0, bk, cp);
            for (int t0 = 0; t0 < s.T; t0 += bq)
            {
                LoadTile(qkv, sh, q, bq + 1, s, b, 0, t0, bq, cp);
                LoadTile(da, sh, g, bq + 1, s, b, 3, t0, bq, cp);
                LoadRowTerms(lse, delta, sh, ls, dl, s, b, t0, bq);
                Group.Barrier();
                ScoreGradTile(sh, f, ty, tx, sc, dp, k, v, bk, q, g, bq + 1, s.Ch, true, ls, dl, t0, u0, s.T, alpha);
                if (storeScores)   // v6, v7: dS[t, u] from the query-major tile, a key per thread within a query (coalesced)
                    for (var e = new TileWalk(bk); e.Row < bq; e.Next())
                        if (t0 + e.Row < s.T && u0 + e.Col < s.T)
                            scores[(b * s.T + t0 + e.Row) * s.T + u0 + e.Col] = sh[dp + e.Row * (bk + 1) + e.Col];
                float keep = t0 == 0 ? 0f : 1f;
                AccumulateChannels(sh, f, ty, tx, sc, bk + 1, g, bq + 1, bq, dv, cp, keep, keep, keep, keep);
                if (keyGrad) AccumulateChannels(sh, f, ty, tx, dp, bk + 1, q, bq + 1, bq, dk, cp, keep, keep, keep, keep);
                Group.Barrier();
            }
            if (keyGrad) StoreTile(sh, dk, cp, dqkv, s, b, 1, u0, bk, alpha);
            StoreTile(sh, dv, cp, dqkv, s, b, 2, u0, bk, 1f);
            Group.Barrier();
        }
    }

    /// <summary>Whether v4's smallest tiles (one thread, 4 x 4) fit its shared memory: heads up to about 470 channels.</summary>
    public static bool FitsV4(AttentionShape s) => TiledSharedFloats(new AttentionTiles { TY = 1, TX = 1 }, s.Ch, 2) <= V3SharedFloats;

    static AttentionTiles RequireTiles(Accelerator acc, AttentionShape s, int pass, int? limitBytes)
        => Tiles(acc, s, pass, limitBytes) ?? throw new VersionNotApplicableException(
            $"attention v4 keeps 4 x 4 tiles of a head in {(limitBytes ?? SharedMemoryLimit.MaxBytes(acc)) / sizeof(float)} floats of shared memory; " +
            $"a head of {s.Ch} channels needs {TiledSharedFloats(new AttentionTiles { TY = 1, TX = 1 }, s.Ch, 2)}");

    /// <summary>One group per (head-batch, row tile), at most 16 per multiprocessor on GPUs (one per core on the CPU),
    /// with the tiles' shared memory requested dynamically.</summary>
    static KernelConfig TiledLaunch(Accelerator acc, AttentionShape s, AttentionTiles f, int pass)
        => PerRowTile(acc, s, f.Rows, f.TY * f.TX, SharedMemoryConfig.RequestDynamic<float>(TiledSharedFloats(f, s.Ch, pass)));

    /// <summary>One group of <paramref name="threads"/> per (head-batch, tile of <paramref name="rows"/> rows), at most 16
    /// per multiprocessor on GPUs (one per core on the CPU): v4's and v8's grid-stride launches.</summary>
    static KernelConfig PerRowTile(Accelerator acc, AttentionShape s, int rows, int threads, SharedMemoryConfig shared)
    {
        long work = (long)s.Batch * ((s.T + rows - 1) / rows);
        long cap = Launch.IsCpu(acc) ? acc.NumMultiprocessors : acc.NumMultiprocessors * 16L;
        return new KernelConfig((int)Math.Min(work, cap), threads, shared);
    }

    /// <summary>v4 forward: a [N, C, T] and lse [N*H, T], in one launch; tiles sized as Tiles.</summary>
    public static void TiledForward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        int? limitBytes = null)
    {
        var f = RequireTiles(acc, s, 0, limitBytes);
        if (Is16x8(f))
            KernelCache.Get(acc, "attention.v4.forward16x8", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape> k = TiledForward16x8Kernel;
                return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
            })(TiledLaunch(acc, s, f, 0), qkv, a, lse, s);
        else
            KernelCache.Get(acc, "attention.v4.forward", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, AttentionTiles> k = TiledForwardKernel;
                return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
            })(TiledLaunch(acc, s, f, 0), qkv, a, lse, s, f);
    }

    /// <summary>v4 backward: dqkv from da, the forward's a and lse, in three launches (delta = rowsum(da a), as v2's;
    /// the query side; the key side); delta [N*H, T] is scratch. Tiles sized as Tiles.</summary>
    public static void TiledBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        ArrayView<float> da, ArrayView<float> delta, ArrayView<float> dqkv, int? limitBytes = null)
    {
        AttentionTiles fq = RequireTiles(acc, s, 1, limitBytes), fk = RequireTiles(acc, s, 2, limitBytes);
        RowDeltas(acc, s, a, da, delta);
        if (Is16x8(fq))
            KernelCache.Get(acc, "attention.v4.query_grad16x8", x => LoadGrad16x8(x, TiledQueryGrad16x8Kernel))(TiledLaunch(acc, s, fq, 1), qkv, da, lse, delta, dqkv, s);
        else
            KernelCache.Get(acc, "attention.v4.query_grad", x => LoadGrad(x, TiledQueryGradKernel))(TiledLaunch(acc, s, fq, 1), qkv, da, lse, delta, dqkv, s, fq);
        if (Is16x8(fk))
            KernelCache.Get(acc, "attention.v4.key_value_grad16x8", x => LoadGrad16x8(x, TiledKeyValueGrad16x8Kernel))(TiledLaunch(acc, s, fk, 2), qkv, da, lse, delta, dqkv, s);
        else
            KernelCache.Get(acc, "attention.v4.key_value_grad", x => LoadGrad(x, TiledKeyValueGradKernel))(TiledLaunch(acc, s, fk, 2), qkv, da, lse, delta, dqkv, s, fk);
    }

    /// <summary>v6 backward: dqkv from da, the forward's a and lse (v4's forward), in three launches and a GEMM: delta =
    /// rowsum(da a); v4's key side (dK, dV), storing dS [N*H, T, T] in <paramref name="scores"/>; dQ = alpha K dS^T as v1's
    /// backward makes it, through <paramref name="gemm"/> (default: Gemm.Run at GEMM's default version).</summary>
    /// <remarks>v7 (<paramref name="keyGradByGemm"/>): dK = alpha Q dS by GEMM too, not in the key side's tiles.</remarks>
    public static void TiledScoresBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        ArrayView<float> da, ArrayView<float> delta, ArrayView<float> scores, ArrayView<float> dqkv, int? limitBytes = null, GemmRunner? gemm = null,
        bool keyGradByGemm = false)
    {
        int keyGrad = keyGradByGemm ? 0 : 1, pass = keyGradByGemm ? 3 : 2;   // v7's key side keeps no dK
        var fk = RequireTiles(acc, s, pass, limitBytes);
        string v = keyGradByGemm ? "v7" : "v6";
        RowDeltas(acc, s, a, da, delta);
        if (Is16x8(fk))
            KernelCache.Get(acc, $"attention.{v}.key_value_grad16x8", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AttentionShape> k = TiledKeyValueScores16x8Kernel;
                return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
            })(TiledLaunch(acc, s, fk, pass), qkv, da, lse, delta, dqkv, scores, keyGrad, s);
        else
            KernelCache.Get(acc, $"attention.{v}.key_value_grad", x =>
            {
                Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, AttentionShape, AttentionTiles> k = TiledKeyValueScoresKernel;
                return Raised(x, x.LoadStreamKernel(k, LaunchBoundsAttribute.Of(k, x.MaxNumThreadsPerGroup)), k);
            })(TiledLaunch(acc, s, fk, pass), qkv, da, lse, delta, dqkv, scores, keyGrad, s, fk);
        gemm ??= Gemm.At(acc);
        GradFromScores(s, 0, qkv, scores, dqkv, gemm);
        if (keyGradByGemm) GradFromScores(s, 1, qkv, scores, dqkv, gemm);
    }

    static Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, AttentionTiles> LoadGrad(
        Accelerator acc, Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, AttentionTiles> kernel)
        => Raised(acc, acc.LoadStreamKernel(kernel, LaunchBoundsAttribute.Of(kernel, acc.MaxNumThreadsPerGroup)), kernel);

    static Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape> LoadGrad16x8(
        Accelerator acc, Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape> kernel)
        => Raised(acc, acc.LoadStreamKernel(kernel, LaunchBoundsAttribute.Of(kernel, acc.MaxNumThreadsPerGroup)), kernel);

    /// <summary>A v4 launcher with its kernel's shared-memory limit raised (SharedMemoryLimit).</summary>
    static T Raised<T>(Accelerator acc, T launcher, Delegate kernel) where T : Delegate
        => SharedMemoryLimit.Raise(acc, launcher, "attention v4 " + kernel.Method.Name);

    /// <summary>Whether a run-time shape is the one the *16x8Kernel entries fix at compile time.</summary>
    static bool Is16x8(AttentionTiles f) => f.TY == default(Tiles16x8).TY && f.TX == default(Tiles16x8).TX;

    /// <summary>Whether a version can run at this shape (v3 needs the head to fit its shared memory).</summary>
    public static bool Runs(AttentionShape s, AttentionVersion v) => v switch
    {
        AttentionVersion.V3SharedHead => FitsV3(s),
        AttentionVersion.V4Tiled or AttentionVersion.V6TiledScores or AttentionVersion.V7TiledScoresDk => FitsV4(s),
        AttentionVersion.V8WarpRows or AttentionVersion.V10WarpRowsQueryGrad or AttentionVersion.V11WarpRowsLean
            or AttentionVersion.V12WarpRowsLeanQueryGrad => FitsV8(s),
        AttentionVersion.V9WarpRowsForward => FitsV8(s) && FitsV4(s),
        _ => true,
    };

    /// <summary>Whether a version can run at this shape on this accelerator: v8-v12 also need 32-lane warps in
    /// 128-thread groups (not kd's CPU device of 2-thread groups) and the shared memory of v8's (v11's) passes.</summary>
    public static bool Runs(Accelerator acc, AttentionShape s, AttentionVersion v)
        => Runs(s, v) && (!UsesWarpRows(v) || WarpRowsRun(acc) && WarpRowsFit(acc, s, v));

    /// <summary>Whether a version runs v8's kernels or v11's (v8-v12).</summary>
    public static bool UsesWarpRows(AttentionVersion v)
        => v is AttentionVersion.V8WarpRows or AttentionVersion.V9WarpRowsForward or AttentionVersion.V10WarpRowsQueryGrad || IsLean(v) || IsMma(v);

    /// <summary>Whether a version runs v11's lean kernels (v11, v12; v13 in its backward).</summary>
    static bool IsLean(AttentionVersion v) => v is AttentionVersion.V11WarpRowsLean or AttentionVersion.V12WarpRowsLeanQueryGrad or AttentionVersion.V13Tf32x3Forward;

    /// <summary>Whether a version's forward runs on the tensor cores (v13-v15).</summary>
    static bool IsMma(AttentionVersion v) => v is AttentionVersion.V13Tf32x3Forward or AttentionVersion.V14Tf32x3 || IsPipelinedMma(v);

    /// <summary>Whether a version's key side runs on the tensor cores (v14, v15: Attention.Tf32x3.cs).</summary>
    static bool IsMmaBackward(AttentionVersion v) => v == AttentionVersion.V14Tf32x3 || IsPipelinedMma(v);

    /// <summary>Whether a version copies its tensor-core kernels' tiles by cp.async under the products (v15).</summary>
    static bool IsPipelinedMma(AttentionVersion v) => v == AttentionVersion.V15PipelinedTf32x3;

    /// <summary>Whether a version's backward makes dQ with v10's kernel (v10, v12), not the batched GEMM.</summary>
    static bool QueryGradByKernel(AttentionVersion v) => v is AttentionVersion.V10WarpRowsQueryGrad or AttentionVersion.V12WarpRowsLeanQueryGrad;

    /// <summary>Whether attention=auto tries a version here: never v13-v15 until a GPU has run them; on the CPU accelerator not v2,
    /// v4, v6 and v7, where forward + backward at fmnist's 14x14 (batch 4) took 6.5x and 12x v1's time (barriers are
    /// OS-thread barriers there), except at shapes small enough (under 2^16 multiply-adds per product) that a trial costs
    /// nothing.</summary>
    public static bool Tunable(Accelerator acc, AttentionShape s, AttentionVersion v)
        => !IsMma(v) && (!Launch.IsCpu(acc) || !SavesLogSumExp(v) || (long)s.Batch * s.T * s.T * s.Ch < 1 << 16);

    /// <summary>Whether a version's forward keeps the log-sum-exp [N*H, T] for its backward (v2, v4, v6-v12), not the weights
    /// P [N*H, T, T] (v1, v3).</summary>
    public static bool SavesLogSumExp(AttentionVersion v)
        => v is AttentionVersion.V2Streaming or AttentionVersion.V4Tiled or AttentionVersion.V6TiledScores or AttentionVersion.V7TiledScoresDk
            || UsesWarpRows(v);

    static void RequireV3(AttentionShape s)
    {
        if (!FitsV3(s))
            throw new VersionNotApplicableException($"attention v3 holds a head in {V3SharedFloats} floats of shared memory; a head of {s.Ch} channels " +
                                        $"and {s.T} positions needs {4L * s.Ch * s.T + 2L * s.T * s.T}");
    }

    static KernelConfig PerHead(Accelerator acc, AttentionShape s)
        => new(Math.Min(s.Batch, Launch.IsCpu(acc) ? acc.NumMultiprocessors : acc.NumMultiprocessors * 8), Launch.PowerOfTwoGroup(acc, 128));

    /// <summary>v3 forward: a [N, C, T] and the weights p [N*H, T, T], in one launch.</summary>
    public static void SharedForward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> a)
    {
        RequireV3(s);
        KernelCache.Get(acc, "attention.v3.forward", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(SharedForwardKernel))
            (PerHead(acc, s), qkv, p, a, s);
    }

    /// <summary>v3 backward: dqkv [N, 3C, T] from da and the forward's weights p, in one launch.</summary>
    public static void SharedBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> da, ArrayView<float> dqkv)
    {
        RequireV3(s);
        KernelCache.Get(acc, "attention.v3.backward", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, AttentionShape>(SharedBackwardKernel))(PerHead(acc, s), qkv, p, da, dqkv, s);
    }

    /// <summary>v1 on the CPU accelerator. On GPUs v10 at heads of up to 32 channels, v11 at wider ones (up to 64), where
    /// they run (32-lane warps, their shared memory; v11 takes less than v8, so v8 is never the default); elsewhere (wider heads, OpenCL) v6 at heads of up to 32 channels and from
    /// 1024 positions (32x32) up, else v3 where a head fits its shared memory, else v2 above 1024 positions, else v1.
    /// On an H200 (bench/results/h200-2026-11-27), forward + backward:
    /// - call 1 (v1, v4, v6-v9 beside SDPA): v8 the fastest at all five cases: 0.159 ms against v6's 0.195 at fmnist's
    ///   7x7, 1.357 against 1.913 at 14x14, 9.48 against 11.58 at adm64's 32x32, 1.108 against 1.300 (v1, the default there
    ///   then, 1.751) at 16x16, 0.157 against 0.169 (v1 0.261) at 8x8; the fmnist training step 74.6 ms with v8 against 77.8
    ///   with v6;
    /// - calls 2 and 4 (v10, v8 with its own dQ kernel): 1.301 ms against v8's 1.356-1.362 at 14x14, 0.157-0.158 against
    ///   0.159-0.160 at 7x7, the training step 71.9 ms against 72.9 with v8 (call 4); at the 64-channel heads v10 lost
    ///   (9.68-9.74 against 9.47-9.56 ms at 32x32), where the GEMM's tiles are full.
    /// - 2026-11-27b, call 1 (v8, v10-v12 beside SDPA): v11 the fastest at adm64's 64-channel heads, 7.49 ms against v8's
    ///   9.56 at 32x32, 0.925 against 1.115 at 16x16, 0.130 against 0.157 at 8x8 (v12 within 1% of v11 there); slower at
    ///   fmnist's 32-channel heads (1.428 against v10's 1.281 at 14x14, 0.179 against 0.157 at 7x7).
    /// On an H100 (bench/results/h100-2026-11-27 and -27b), forward + backward: v4 0.29 ms against v3's 0.34 at 7x7, 2.88
    /// against v1's 5.94 at 14x14, v6 2.42 against v4's 2.88 there and 15.9 against 22.6 at adm64's 32x32.</summary>
    public static AttentionVersion Choose(Accelerator acc, AttentionShape s)
        => Launch.IsCpu(acc) ? AttentionVersion.V1Gemm
         : Runs(acc, s, AttentionVersion.V10WarpRowsQueryGrad) && s.Ch <= 32 ? AttentionVersion.V10WarpRowsQueryGrad
         : Runs(acc, s, AttentionVersion.V11WarpRowsLean) ? AttentionVersion.V11WarpRowsLean
         : FitsV4(s) && (s.Ch <= 32 || s.T >= 1024) ? AttentionVersion.V6TiledScores
         : FitsV3(s) ? AttentionVersion.V3SharedHead : s.T > 1024 ? AttentionVersion.V2Streaming : AttentionVersion.V1Gemm;

    /// <summary>v2 forward: a [N, C, T] and lse [N*H, T].</summary>
    public static void StreamForward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse)
    {
        var k = KernelCache.Get(acc, "attention.v2.forward",
            x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(StreamForwardKernel));
        k(Launch.GridStride(acc, (long)s.Batch * s.T * s.T), qkv, a, lse, s);
    }

    /// <summary>delta [N*H, T] = rowsum(da a), the softmax backward's row term, for v2, v4, v6 and v7.</summary>
    static void RowDeltas(Accelerator acc, AttentionShape s, ArrayView<float> a, ArrayView<float> da, ArrayView<float> delta)
        => KernelCache.Get(acc, "attention.v2.delta", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(StreamDeltaKernel))
            (Launch.GridStride(acc, (long)s.Batch * s.T * s.Ch), a, da, delta, s);

    /// <summary>v2 backward: dqkv from da, the forward's a and lse; delta [N*H, T] is scratch.</summary>
    public static void StreamBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        ArrayView<float> da, ArrayView<float> delta, ArrayView<float> dqkv)
    {
        var cfg = Launch.GridStride(acc, (long)s.Batch * s.T * s.T);
        RowDeltas(acc, s, a, da, delta);
        KernelCache.Get(acc, "attention.v2.query_grad", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionShape>(StreamQueryGradKernel))(cfg, qkv, da, lse, delta, dqkv, s);
        KernelCache.Get(acc, "attention.v2.key_value_grad", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionShape>(StreamKeyValueGradKernel))(cfg, qkv, da, lse, delta, dqkv, s);
    }

    /// <summary>Two products of 2 B T T ch FLOPs plus the softmax; bytes: what any version must move, qkv read and a
    /// written (v1 and v3 also write and read the weights P, v4 recomputes instead: the floor is the operation's).</summary>
    public static KernelCost ForwardCost(AttentionShape s)
    {
        double b = s.Batch, t = s.T, ch = s.Ch;
        return new(4 * b * t * t * ch + 5 * b * t * t, 4 * (3.0 * s.N * s.C * s.T + s.N * s.C * s.T));
    }

    /// <summary>Four products (dP, dV, dQ, dK) plus the softmax's backward; bytes: qkv, a and da read, dqkv written.</summary>
    public static KernelCost BackwardCost(AttentionShape s)
    {
        double b = s.Batch, t = s.T, ch = s.Ch;
        return new(8 * b * t * t * ch + 4 * b * t * t, 4 * (3.0 * s.N * s.C * s.T * 2 + 2.0 * s.N * s.C * s.T));
    }

    public static class Reference
    {
        public static double[] Forward(double[] qkv, AttentionShape s)
        {
            int ch = s.Ch, t = s.T;
            double scale = 1 / Math.Sqrt(Math.Sqrt(ch));
            var a = new double[s.N * s.C * t];
            for (int n = 0; n < s.N; n++)
            for (int h = 0; h < s.Heads; h++)
            {
                // channel of q/k/v element c of head h, within sample n
                int Chan(int part, int c) => s.NewOrder != 0 ? part * s.C + h * ch + c : h * 3 * ch + part * ch + c;
                double X(int part, int c, int pos) => qkv[(n * 3 * s.C + Chan(part, c)) * t + pos];
                for (int i = 0; i < t; i++)
                {
                    var w = new double[t];
                    for (int u = 0; u < t; u++)
                        for (int c = 0; c < ch; c++) w[u] += X(0, c, i) * scale * (X(1, c, u) * scale);
                    double max = w.Max(), sum = 0;
                    for (int u = 0; u < t; u++) sum += w[u] = Math.Exp(w[u] - max);
                    for (int c = 0; c < ch; c++)
                    {
                        double acc = 0;
                        for (int u = 0; u < t; u++) acc += w[u] / sum * X(2, c, u);
                        a[(n * s.C + h * ch + c) * t + i] = acc;
                    }
                }
            }
            return a;
        }

        /// <summary>dqkv [N, 3C, T] of sum(da * a) for a = Forward(qkv), analytically: with P = softmax(alpha Q^T K)
        /// per head, dV = dA P, dP = dA^T V, dS = P (dP - rowsum(P dP)), dQ = alpha K dS^T, dK = alpha Q dS.</summary>
        public static double[] Backward(double[] qkv, double[] da, AttentionShape s)
        {
            int ch = s.Ch, t = s.T;
            double alpha = 1 / Math.Sqrt(ch);
            var g = new double[qkv.Length];
            for (int b = 0; b < s.Batch; b++)
            {
                double X(int part, int c, int pos) => qkv[s.Qkv(b, part, c, pos)];
                for (int i = 0; i < t; i++)
                {
                    var p = new double[t];
                    for (int u = 0; u < t; u++)
                        for (int c = 0; c < ch; c++) p[u] += alpha * X(0, c, i) * X(1, c, u);
                    double max = p.Max(), sum = 0;
                    for (int u = 0; u < t; u++) sum += p[u] = Math.Exp(p[u] - max);
                    var dp = new double[t];
                    double delta = 0;
                    for (int u = 0; u < t; u++)
                    {
                        p[u] /= sum;
                        for (int c = 0; c < ch; c++) dp[u] += da[s.Out(b, c, i)] * X(2, c, u);
                        delta += p[u] * dp[u];
                    }
                    for (int u = 0; u < t; u++)
                    {
                        double ds = p[u] * (dp[u] - delta);
                        for (int c = 0; c < ch; c++)
                        {
                            g[s.Qkv(b, 2, c, u)] += p[u] * da[s.Out(b, c, i)];
                            g[s.Qkv(b, 0, c, i)] += alpha * ds * X(1, c, u);
                            g[s.Qkv(b, 1, c, u)] += alpha * ds * X(0, c, i);
                        }
                    }
                }
            }
            return g;
        }
    }
}
