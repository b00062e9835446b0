using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Hyper-parameters of one AdamW step, with the bias corrections of step t folded in on the host.</summary>
public struct AdamStep
{
    public float Beta1, Beta2, Eps;
    /// <summary>1 - lr * weight_decay: decoupled decay (Loshchilov and Hutter), as torch.optim.AdamW.</summary>
    public float Decay;
    /// <summary>lr / (1 - beta1^t).</summary>
    public float StepSize;
    /// <summary>1 / sqrt(1 - beta2^t).</summary>
    public float InvSqrtBias2;

    public static AdamStep Create(double lr, double beta1, double beta2, double eps, double weightDecay, long t) => new()
    {
        Beta1 = (float)beta1, Beta2 = (float)beta2, Eps = (float)eps,
        Decay = (float)(1 - lr * weightDecay),
        StepSize = (float)(lr / (1 - Math.Pow(beta1, t))),
        InvSqrtBias2 = (float)(1 / Math.Sqrt(1 - Math.Pow(beta2, t))),
    };
}

/// <summary>Fused AdamW (one pass over p, g, m, v) and the EMA of weights.</summary>
public static class Adam
{
    static void AdamWKernel(ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamStep s, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            float gi = g[i];
            float mi = s.Beta1 * m[i] + (1f - s.Beta1) * gi;
            float vi = s.Beta2 * v[i] + (1f - s.Beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * s.Decay - s.StepSize * mi / (XMath.Sqrt(vi) * s.InvSqrtBias2 + s.Eps);
        }
    }

    /// <summary>ema = rate * ema + (1 - rate) * p.</summary>
    static void EmaKernel(ArrayView<float> ema, ArrayView<float> p, float rate, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) ema[i] = rate * ema[i] + (1f - rate) * p[i];
    }

    public static void AdamW(Accelerator acc, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamStep s, int n)
    {
        var k = KernelCache.Get(acc, "adam.adamw",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamStep, int>(AdamWKernel));
        k(Launch.GridStride(acc, n), p, g, m, v, s, n);
    }

    public static void Ema(Accelerator acc, ArrayView<float> ema, ArrayView<float> p, float rate, int n)
    {
        var k = KernelCache.Get(acc, "adam.ema",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, float, int>(EmaKernel));
        k(Launch.GridStride(acc, n), ema, p, rate, n);
    }

    /// <summary>Reads p, g, m, v and writes p, m, v.</summary>
    public static KernelCost AdamWCost(long n) => new(14.0 * n, 28.0 * n);
    public static KernelCost EmaCost(long n) => new(3.0 * n, 12.0 * n);

    public static class Reference
    {
        public static (double[] p, double[] m, double[] v) AdamW(double[] p, double[] g, double[] m, double[] v,
            double lr, double beta1, double beta2, double eps, double wd, long t)
        {
            int n = p.Length;
            var (po, mo, vo) = (new double[n], new double[n], new double[n]);
            for (int i = 0; i < n; i++)
            {
                mo[i] = beta1 * m[i] + (1 - beta1) * g[i];
                vo[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
                double mhat = mo[i] / (1 - Math.Pow(beta1, t)), vhat = vo[i] / (1 - Math.Pow(beta2, t));
                po[i] = p[i] - lr * wd * p[i] - lr * mhat / (Math.Sqrt(vhat) + eps);
            }
            return (po, mo, vo);
        }

        public static double[] Ema(double[] ema, double[] p, double rate) => ema.Select((e, i) => rate * e + (1 - rate) * p[i]).ToArray();
    }
}
