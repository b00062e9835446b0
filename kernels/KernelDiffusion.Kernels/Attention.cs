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

public enum AttentionVersion { V1Gemm = 1, V2Streaming = 2, V3SharedHead = 3 }

/// <summary>v2, streaming: one thread per query row keeps a running max, sum and output (online softmax), so the
/// T x T weights never exist; the backward recomputes them from the saved log-sum-exp: dQ by query row, dK and dV
/// by key column (no atomics, deterministic). Memory O(T) instead of O(T^2), at the price of recomputing q k.
/// v1, unfused: per head, S = alpha Q^T K [T, T] by GEMM, P = softmax(S) row-wise in place, a = V P^T; P is
/// kept for the backward: dP = dA^T V, dV = dA P, dS = P (dP - rowsum(P dP)), dQ = alpha K dS^T, dK = alpha Q dS.
/// Five GEMMs and two softmax passes, all existing kernels, batched over (sample, head) with two-level strides.
/// v3, for short sequences (the 7x7 attention of the fmnist models): one group of threads per (sample, head) holds
/// the head's q, k, v and weights in shared memory and does the whole forward in one launch, and the whole backward in
/// another, where v1 launches 3 and 5 kernels; it keeps P for the backward as v1 does.</summary>
public static class Attention
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
        var (q, hs) = Part(s, 0);
        var (k, _) = Part(s, 1);
        var (v, _) = Part(s, 2);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T, ptOuter = s.Heads * tt, chT = s.Ch * s.T, cT = s.C * s.T;
        gemm(da, At(qkv, v), dp, Shape(s, s.T, s.T, s.Ch, true, false, chT, cT, hs, qkvOuter, tt, ptOuter, 1));
        gemm(da, p, At(dqkv, v), Shape(s, s.Ch, s.T, s.T, false, false, chT, cT, tt, ptOuter, hs, qkvOuter, 1));
        Softmax.Backward(acc, p, dp, dp, s.Batch * s.T, s.T, log: false);
        gemm(At(qkv, k), dp, At(dqkv, q), Shape(s, s.Ch, s.T, s.T, false, true, hs, qkvOuter, tt, ptOuter, hs, qkvOuter, s.Alpha));
        gemm(At(qkv, q), dp, At(dqkv, k), Shape(s, s.Ch, s.T, s.T, false, false, hs, qkvOuter, tt, ptOuter, hs, qkvOuter, s.Alpha));
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
        for (int e = Group.IdxX; e < s.Ch * s.T; e += Group.DimX)
        {
            int c = e / s.T, t = e - c * s.T;
            sh[at + e] = qkv[s.Qkv(b, part, c, t)];
        }
    }

    /// <summary>v3 forward: S = alpha Q^T K, P = softmax(S) row by row (kept in shared memory and written to p for the
    /// backward), a = V P^T.</summary>
    static void SharedForwardKernel(ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> a, AttentionShape s)
    {
        var sh = SharedMemory.Allocate<float>(V3SharedFloats);
        int ct = s.Ch * s.T, tt = s.T * s.T, q = 0, k = ct, v = 2 * ct, w = 3 * ct;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int b = Grid.IdxX; b < s.Batch; b += Grid.DimX)
        {
            LoadHead(qkv, sh, q, s, b, 0);
            LoadHead(qkv, sh, k, s, b, 1);
            LoadHead(qkv, sh, v, s, b, 2);
            Group.Barrier();
            for (int e = Group.IdxX; e < tt; e += Group.DimX)
            {
                int t = e / s.T, u = e - t * s.T;
                float acc = 0;
                for (int c = 0; c < s.Ch; c++) acc += sh[q + c * s.T + t] * sh[k + c * s.T + u];
                sh[w + e] = alpha * acc;
            }
            Group.Barrier();
            for (int t = Group.IdxX; t < s.T; t += Group.DimX)
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
            for (int e = Group.IdxX; e < ct; e += Group.DimX)
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
        var sh = SharedMemory.Allocate<float>(V3SharedFloats);
        int ct = s.Ch * s.T, tt = s.T * s.T, q = 0, k = ct, v = 2 * ct, g = 3 * ct, pw = 4 * ct, ds = 4 * ct + tt;
        float alpha = 1f / XMath.Sqrt(s.Ch);
        for (int b = Grid.IdxX; b < s.Batch; b += Grid.DimX)
        {
            LoadHead(qkv, sh, q, s, b, 0);
            LoadHead(qkv, sh, k, s, b, 1);
            LoadHead(qkv, sh, v, s, b, 2);
            for (int e = Group.IdxX; e < ct; e += Group.DimX)
            {
                int c = e / s.T, t = e - c * s.T;
                sh[g + e] = da[s.Out(b, c, t)];
            }
            for (int e = Group.IdxX; e < tt; e += Group.DimX) sh[pw + e] = p[b * tt + e];
            Group.Barrier();
            // dP[t, u] = sum_c da[c, t] v[c, u], kept in ds; dV[c, u] = sum_t P[t, u] da[c, t].
            for (int e = Group.IdxX; e < tt; e += Group.DimX)
            {
                int t = e / s.T, u = e - t * s.T;
                float acc = 0;
                for (int c = 0; c < s.Ch; c++) acc += sh[g + c * s.T + t] * sh[v + c * s.T + u];
                sh[ds + e] = acc;
            }
            for (int e = Group.IdxX; e < ct; e += Group.DimX)
            {
                int c = e / s.T, u = e - c * s.T;
                float acc = 0;
                for (int t = 0; t < s.T; t++) acc += sh[pw + t * s.T + u] * sh[g + c * s.T + t];
                dqkv[s.Qkv(b, 2, c, u)] = acc;
            }
            Group.Barrier();
            // dS[t, u] = P[t, u] (dP[t, u] - sum_u' P[t, u'] dP[t, u']), a row per thread.
            for (int t = Group.IdxX; t < s.T; t += Group.DimX)
            {
                float row = 0;
                for (int u = 0; u < s.T; u++) row += sh[pw + t * s.T + u] * sh[ds + t * s.T + u];
                for (int u = 0; u < s.T; u++) sh[ds + t * s.T + u] = sh[pw + t * s.T + u] * (sh[ds + t * s.T + u] - row);
            }
            Group.Barrier();
            // dQ[c, t] = alpha sum_u dS[t, u] k[c, u]; dK[c, u] = alpha sum_t dS[t, u] q[c, t].
            for (int e = Group.IdxX; e < ct; e += Group.DimX)
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

    /// <summary>Whether a version can run at this shape (v3 needs the head to fit its shared memory).</summary>
    public static bool Runs(AttentionShape s, AttentionVersion v) => v != AttentionVersion.V3SharedHead || FitsV3(s);

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

    /// <summary>v1 on the CPU accelerator. On GPUs v3 where a head fits its shared memory (an H100,
    /// bench/results/h100-2026-11-26b: 0.33 ms against v1's 0.61 forward + backward at fmnist's 7x7), v2 when the weights
    /// would be large (T above 1024, i.e. attention at 32x32 and up), else v1.</summary>
    public static AttentionVersion Choose(Accelerator acc, AttentionShape s)
        => Launch.IsCpu(acc) ? AttentionVersion.V1Gemm
         : FitsV3(s) ? AttentionVersion.V3SharedHead : s.T > 1024 ? AttentionVersion.V2Streaming : AttentionVersion.V1Gemm;

    /// <summary>v2 forward: a [N, C, T] and lse [N*H, T].</summary>
    public static void StreamForward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse)
    {
        var k = KernelCache.Get(acc, "attention.v2.forward",
            x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(StreamForwardKernel));
        k(Launch.GridStride(acc, (long)s.Batch * s.T * s.T), qkv, a, lse, s);
    }

    /// <summary>v2 backward: dqkv from da, the forward's a and lse; delta [N*H, T] is scratch.</summary>
    public static void StreamBackward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> a, ArrayView<float> lse,
        ArrayView<float> da, ArrayView<float> delta, ArrayView<float> dqkv)
    {
        var cfg = Launch.GridStride(acc, (long)s.Batch * s.T * s.T);
        KernelCache.Get(acc, "attention.v2.delta", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(StreamDeltaKernel))
            (cfg, a, da, delta, s);
        KernelCache.Get(acc, "attention.v2.query_grad", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionShape>(StreamQueryGradKernel))(cfg, qkv, da, lse, delta, dqkv, s);
        KernelCache.Get(acc, "attention.v2.key_value_grad", x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, AttentionShape>(StreamKeyValueGradKernel))(cfg, qkv, da, lse, delta, dqkv, s);
    }

    /// <summary>Two GEMMs of 2 B T T ch FLOPs plus the softmax; bytes: qkv read, a written, P written and read.</summary>
    public static KernelCost ForwardCost(AttentionShape s)
    {
        double b = s.Batch, t = s.T, ch = s.Ch;
        return new(4 * b * t * t * ch + 5 * b * t * t, 4 * (3.0 * s.N * s.C * s.T + s.N * s.C * s.T + 3 * b * t * t));
    }

    public static KernelCost BackwardCost(AttentionShape s)
    {
        double b = s.Batch, t = s.T, ch = s.Ch;
        return new(8 * b * t * t * ch + 4 * b * t * t, 4 * (3.0 * s.N * s.C * s.T * 2 + s.N * s.C * s.T + 6 * b * t * t));
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
    }
}
