using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>The variational-bound term of guided-diffusion's hybrid loss for learn_sigma (learned-range variance),
/// per element, with its derivative with respect to the model's variance output v. The mean uses the predicted
/// epsilon detached (guided-diffusion's frozen_out), so only v receives a gradient:
///   pred_x0 = c_recip x_t - c_recipm1 eps,  mean = coef1 pred_x0 + coef2 x_t,  true mean = coef1 x_0 + coef2 x_t,
///   log var = frac log beta_t + (1 - frac) log posterior var_t (clipped), frac = (v + 1) / 2;
///   t > 0: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) in bits; t = 0: -log2 of the discretised Gaussian
///   likelihood of x_0 (bins of 2/255, the tanh approximation of the normal CDF, edges at +-0.999).
/// Per-sample coefficients, 7 floats each: c_recip, c_recipm1, coef1, coef2, min log var, max log var, t == 0.</summary>
public static class DiffusionLoss
{
    public const int Coefs = 7;
    const float Ln2 = 0.6931471805599453f;

    /// <summary>0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) and its derivative.</summary>
    static float Cdf(float x) => 0.5f * (1f + XMath.Tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
    static float CdfDerivative(float x)
    {
        float th = XMath.Tanh(0.7978845608f * (x + 0.044715f * x * x * x));
        return 0.5f * (1f - th * th) * 0.7978845608f * (1f + 3f * 0.044715f * x * x);
    }

    static void VbKernel(ArrayView<float> eps, ArrayView<float> v, ArrayView<float> xt, ArrayView<float> x0, ArrayView<float> coefs,
        ArrayView<float> loss, ArrayView<float> dv, int perSample, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int c = (i / perSample) * Coefs;
            float xti = xt[i], x0i = x0[i];
            float predX0 = coefs[c] * xti - coefs[c + 1] * eps[i];
            float mean = coefs[c + 2] * predX0 + coefs[c + 3] * xti, trueMean = coefs[c + 2] * x0i + coefs[c + 3] * xti;
            float minLog = coefs[c + 4], maxLog = coefs[c + 5];
            float frac = (v[i] + 1f) * 0.5f, logVar = frac * maxLog + (1f - frac) * minLog;
            float l, dLogVar;
            if (coefs[c + 6] == 0f)
            {
                float d = trueMean - mean, e1 = XMath.Exp(minLog - logVar), e2 = XMath.Exp(-logVar);
                l = 0.5f * (-1f + logVar - minLog + e1 + d * d * e2) / Ln2;
                dLogVar = 0.5f * (1f - e1 - d * d * e2) / Ln2;
            }
            else
            {
                // log scale s = logVar / 2; inputs scale with exp(-s), so d input / d s = -input.
                float inv = XMath.Exp(-0.5f * logVar), centered = x0i - mean;
                float plusIn = inv * (centered + 1f / 255f), minIn = inv * (centered - 1f / 255f);
                float cdfPlus = Cdf(plusIn), cdfMin = Cdf(minIn);
                float logProb, dLogProbDs;
                if (x0i < -0.999f)
                {
                    logProb = XMath.Log(XMath.Max(cdfPlus, 1e-12f));
                    dLogProbDs = cdfPlus > 1e-12f ? -CdfDerivative(plusIn) * plusIn / cdfPlus : 0f;
                }
                else if (x0i > 0.999f)
                {
                    float one = 1f - cdfMin;
                    logProb = XMath.Log(XMath.Max(one, 1e-12f));
                    dLogProbDs = one > 1e-12f ? CdfDerivative(minIn) * minIn / one : 0f;
                }
                else
                {
                    float delta = cdfPlus - cdfMin;
                    logProb = XMath.Log(XMath.Max(delta, 1e-12f));
                    dLogProbDs = delta > 1e-12f ? (-CdfDerivative(plusIn) * plusIn + CdfDerivative(minIn) * minIn) / delta : 0f;
                }
                l = -logProb / Ln2;
                dLogVar = -0.5f * dLogProbDs / Ln2;
            }
            loss[i] = l;
            dv[i] = dLogVar * 0.5f * (maxLog - minLog);
        }
    }

    /// <summary>Per-element loss (bits) and dloss/dv for eps, v, x_t, x_0 of shape [B, ...] with perSample elements each.</summary>
    public static void Vb(Accelerator acc, ArrayView<float> eps, ArrayView<float> v, ArrayView<float> xt, ArrayView<float> x0, ArrayView<float> coefs,
        ArrayView<float> loss, ArrayView<float> dv, int perSample, int n)
    {
        var k = KernelCache.Get(acc, "diffusion_loss.vb", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(VbKernel));
        k(Launch.GridStride(acc, n), eps, v, xt, x0, coefs, loss, dv, perSample, n);
    }

    public static KernelCost VbCost(long n) => new(60.0 * n, 4.0 * 6 * n);

    public static class Reference
    {
        static double Cdf(double x) => 0.5 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

        /// <summary>The per-element loss in float64, as guided-diffusion's _vb_terms_bpd computes it.</summary>
        public static double[] Vb(double[] eps, double[] v, double[] xt, double[] x0, double[] coefs, int perSample)
        {
            var r = new double[v.Length];
            for (int i = 0; i < v.Length; i++)
            {
                int c = i / perSample * Coefs;
                double predX0 = coefs[c] * xt[i] - coefs[c + 1] * eps[i];
                double mean = coefs[c + 2] * predX0 + coefs[c + 3] * xt[i], trueMean = coefs[c + 2] * x0[i] + coefs[c + 3] * xt[i];
                double frac = (v[i] + 1) / 2, logVar = frac * coefs[c + 5] + (1 - frac) * coefs[c + 4];
                if (coefs[c + 6] == 0)
                {
                    double d = trueMean - mean;
                    r[i] = 0.5 * (-1 + logVar - coefs[c + 4] + Math.Exp(coefs[c + 4] - logVar) + d * d * Math.Exp(-logVar)) / Math.Log(2);
                }
                else
                {
                    double inv = Math.Exp(-0.5 * logVar), centered = x0[i] - mean;
                    double cdfPlus = Cdf(inv * (centered + 1 / 255.0)), cdfMin = Cdf(inv * (centered - 1 / 255.0));
                    double logProb = x0[i] < -0.999 ? Math.Log(Math.Max(cdfPlus, 1e-12))
                        : x0[i] > 0.999 ? Math.Log(Math.Max(1 - cdfMin, 1e-12)) : Math.Log(Math.Max(cdfPlus - cdfMin, 1e-12));
                    r[i] = -logProb / Math.Log(2);
                }
            }
            return r;
        }
    }
}
