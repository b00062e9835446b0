using ILGPU;
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
}

/// <summary>v1, unfused: per head, S = alpha Q^T K [T, T] by GEMM, P = softmax(S) row-wise in place, a = V P^T; P is
/// kept for the backward: dP = dA^T V, dV = dA P, dS = P (dP - rowsum(P dP)), dQ = alpha K dS^T, dK = alpha Q dS.
/// Five GEMMs and two softmax passes, all existing kernels, batched over (sample, head) with two-level strides. A
/// fused kernel that never stores P is a later version.</summary>
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
    public static void Forward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> a, GemmVersion? version = null)
    {
        var (q, hs) = Part(s, 0);
        var (k, _) = Part(s, 1);
        var (v, _) = Part(s, 2);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T, ptOuter = s.Heads * tt, chT = s.Ch * s.T, cT = s.C * s.T;
        Gemm.Run(acc, At(qkv, q), At(qkv, k), p, Shape(s, s.T, s.T, s.Ch, true, false, hs, qkvOuter, hs, qkvOuter, tt, ptOuter, s.Alpha), version);
        Softmax.Forward(acc, p, p, s.Batch * s.T, s.T, log: false);
        Gemm.Run(acc, At(qkv, v), p, a, Shape(s, s.Ch, s.T, s.T, false, true, hs, qkvOuter, tt, ptOuter, chT, cT, 1), version);
    }

    /// <summary>dqkv [N, 3C, T] from da [N, C, T]; dp [N*H, T, T] is scratch.</summary>
    public static void Backward(Accelerator acc, AttentionShape s, ArrayView<float> qkv, ArrayView<float> p, ArrayView<float> da,
        ArrayView<float> dp, ArrayView<float> dqkv, GemmVersion? version = null)
    {
        var (q, hs) = Part(s, 0);
        var (k, _) = Part(s, 1);
        var (v, _) = Part(s, 2);
        int qkvOuter = 3 * s.C * s.T, tt = s.T * s.T, ptOuter = s.Heads * tt, chT = s.Ch * s.T, cT = s.C * s.T;
        Gemm.Run(acc, da, At(qkv, v), dp, Shape(s, s.T, s.T, s.Ch, true, false, chT, cT, hs, qkvOuter, tt, ptOuter, 1), version);
        Gemm.Run(acc, da, p, At(dqkv, v), Shape(s, s.Ch, s.T, s.T, false, false, chT, cT, tt, ptOuter, hs, qkvOuter, 1), version);
        Softmax.Backward(acc, p, dp, dp, s.Batch * s.T, s.T, log: false);
        Gemm.Run(acc, At(qkv, k), dp, At(dqkv, q), Shape(s, s.Ch, s.T, s.T, false, true, hs, qkvOuter, tt, ptOuter, hs, qkvOuter, s.Alpha), version);
        Gemm.Run(acc, At(qkv, q), dp, At(dqkv, k), Shape(s, s.Ch, s.T, s.T, false, false, hs, qkvOuter, tt, ptOuter, hs, qkvOuter, s.Alpha), version);
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
