using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>The constants of one sampler step, shared by every sample. Every sampler (DDPM, DDIM, the log-SNR
/// sampler) is the same update with different constants:
/// x0 = C1 x - C2 eps, clipped; mean = A x0 + B x + E eps_dir; x_next = mean + Std z.</summary>
public struct StepConstants
{
    /// <summary>x0 = C1 x - C2 eps: 1/sqrt(abar) and sqrt(1/abar - 1) (discrete), 1/alpha and sigma/alpha (log-SNR).</summary>
    public float C1, C2;
    /// <summary>Score-form classifier guidance: eps -= EpsGuide s g, with EpsGuide = sqrt(1 - abar) (or sigma).</summary>
    public float EpsGuide;
    public float A, B, E;
    /// <summary>Fixed variance (it multiplies a mean-form guidance gradient) and the standard deviation of the noise.</summary>
    public float Var, Std;
    /// <summary>Learned range: log var = f LogVarMax + (1 - f) LogVarMin with f = (v + 1) / 2 from the model's second
    /// half of channels.</summary>
    public float LogVarMin, LogVarMax;
    /// <summary>1: the model output carries C variance channels after the C eps channels (learn_sigma models).</summary>
    public int HasVariance;
    /// <summary>1: the variance comes from those channels (learned range); needs HasVariance.</summary>
    public int Learned;
    /// <summary>1: the model output has N unconditional rows after the N conditional ones (classifier-free guidance).</summary>
    public int Cfg;
    /// <summary>0: no classifier gradient; 1: applied to eps (score form, DDIM); 2: applied to the mean (ancestral).</summary>
    public int Guide;
    /// <summary>eps_dir in the mean: 0 recomputed from the clipped x0 (as guided-diffusion's DDIM does), 1 the
    /// unconditional eps (CFG++).</summary>
    public int Direction;
    /// <summary>1: add noise (every step but the last).</summary>
    public int Noise;
    /// <summary>The step index that keys the noise.</summary>
    public uint Step;
}

/// <summary>The fused sampling step: after the model's forward (and the classifier's backward), one kernel per step
/// combines the conditional and unconditional eps (eps = eps_c + w (eps_c - eps_u), times the CFG-rescale factor),
/// applies score-form classifier guidance, predicts and clips x0, forms the sampler's mean, adds mean-form classifier
/// guidance (s Var g) and the noise. Two per-sample reductions feed it when asked: the CFG-rescale factor and the
/// dynamic-thresholding percentile.
///
/// Per-sample values live in one buffer of <see cref="PerSample"/> floats per sample: w, s, the eps scale (1 unless
/// CFG rescale sets it) and the clip threshold th (x0 = clamp(x0, -th, th) / th; th = 1 is static clipping, th &lt;= 0
/// none). Noise for element j of sample id at step k is Philox(seed; j, id, k, tag): it depends on nothing else, so a
/// sample does not change with the batch it is drawn in.</summary>
public static class SamplingStep
{
    public const int PerSample = 4;
    public const int SlotW = 0, SlotS = 1, SlotEpsScale = 2, SlotThreshold = 3;
    /// <summary>The step number that keys the starting noise x_T.</summary>
    public const uint InitialStep = 0xFFFFFFFF;
    const uint NoiseTag = 0x4B44534D;

    /// <summary>The standard normal of element j of sample id at a step (Box-Muller on the first two Philox words).</summary>
    public static float Normal(ulong seed, int j, int id, uint step)
    {
        uint c0 = (uint)j, c1 = (uint)id, c2 = step, c3 = NoiseTag;
        Philox.Rounds(ref c0, ref c1, ref c2, ref c3, (uint)seed, (uint)(seed >> 32));
        return XMath.Sqrt(-2f * XMath.Log(Philox.ToUniformOpen0(c0))) * XMath.Cos(2f * XMath.PI * Philox.ToUniform(c1));
    }

    /// <summary>The guided eps of element (i, c, p), before score-form guidance; eu receives the unconditional eps
    /// (the conditional one without CFG).</summary>
    static float CombinedEps(ArrayView<float> model, ArrayView<float> ps, int i, int n, int ch, int hw, int c, int p, int cfg, int hasVariance, out float eu)
    {
        int cout = hasVariance != 0 ? 2 * ch : ch;
        float ec = model[(i * cout + c) * hw + p];
        eu = ec;
        if (cfg == 0) return ec;
        eu = model[((n + i) * cout + c) * hw + p];
        return ec + ps[i * PerSample + SlotW] * (ec - eu);
    }

    /// <summary>x0 before clipping, with the eps scale and score-form guidance applied.</summary>
    static float RawX0(ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps, int i, int j, int n, int ch, int hw,
        StepConstants k, out float eps, out float eu)
    {
        int e = i * ch * hw + j;
        eps = CombinedEps(model, ps, i, n, ch, hw, j / hw, j % hw, k.Cfg, k.HasVariance, out eu) * ps[i * PerSample + SlotEpsScale];
        if (k.Guide == 1) eps -= k.EpsGuide * ps[i * PerSample + SlotS] * grad[e];
        return k.C1 * x[e] - k.C2 * eps;
    }

    static void StepKernel(ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps, ArrayView<int> ids,
        ArrayView<float> next, int n, int ch, int hw, StepConstants k, ulong seed)
    {
        int per = ch * hw, total = n * per, stride = Grid.DimX * Group.DimX;
        for (int e = Grid.GlobalIndex.X; e < total; e += stride)
        {
            int i = e / per, j = e - i * per, c = j / hw;
            float xe = x[e];
            float x0 = RawX0(x, model, grad, ps, i, j, n, ch, hw, k, out float eps, out float eu);
            float th = ps[i * PerSample + SlotThreshold];
            if (th > 0) x0 = XMath.Clamp(x0, -th, th) / th;
            float dir = k.Direction == 0 ? (k.C1 * xe - x0) / k.C2 : eu;
            float mean = k.A * x0 + k.B * xe + k.E * dir;
            float var = k.Var, std = k.Std;
            if (k.Learned != 0)
            {
                float f = (model[(i * 2 * ch + ch + c) * hw + j % hw] + 1f) * 0.5f;
                float logVar = f * k.LogVarMax + (1f - f) * k.LogVarMin;
                var = XMath.Exp(logVar);
                std = XMath.Exp(0.5f * logVar);
            }
            if (k.Guide == 2) mean += ps[i * PerSample + SlotS] * var * grad[e];
            if (k.Noise != 0) mean += std * Normal(seed, j, ids[i], k.Step);
            next[e] = mean;
        }
    }

    /// <summary>One sampler step for n samples of ch x hw values: x [n, ch, hw]; model [n or 2n, ch or 2ch, hw];
    /// grad [n, ch, hw] when k.Guide != 0 (any one-element view otherwise); ps [n, PerSample]; ids [n]. next may be x.</summary>
    public static void Step(Accelerator acc, ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps, ArrayView<int> ids,
        ArrayView<float> next, int n, int ch, int hw, StepConstants k, ulong seed)
    {
        var kernel = KernelCache.Get(acc, "sampling.step", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<int>, ArrayView<float>, int, int, int, StepConstants, ulong>(StepKernel));
        kernel(Launch.GridStride(acc, (long)n * ch * hw), x, model, grad, ps, ids, next, n, ch, hw, k, seed);
    }

    static void InitialNoiseKernel(ArrayView<float> x, ArrayView<int> ids, int n, int per, ulong seed)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int e = Grid.GlobalIndex.X; e < n * per; e += stride)
            x[e] = Normal(seed, e % per, ids[e / per], InitialStep);
    }

    /// <summary>x_T: standard normal noise keyed by (seed, sample id, element).</summary>
    public static void InitialNoise(Accelerator acc, ArrayView<float> x, ArrayView<int> ids, int n, int per, ulong seed)
    {
        var kernel = KernelCache.Get(acc, "sampling.initial_noise",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, int, int, ulong>(InitialNoiseKernel));
        kernel(Launch.GridStride(acc, (long)n * per), x, ids, n, per, seed);
    }

    static void RescaleKernel(ArrayView<float> model, ArrayView<float> ps, int n, int ch, int hw, int hasVariance, float phi)
    {
        int per = ch * hw, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            // Two passes (means, then squared deviations) keep the float sums well conditioned.
            float sc = 0, sg = 0;
            for (int j = 0; j < per; j++)
            {
                float g = CombinedEps(model, ps, i, n, ch, hw, j / hw, j % hw, 1, hasVariance, out _);
                sc += model[(i * (hasVariance != 0 ? 2 * ch : ch) + j / hw) * hw + j % hw];
                sg += g;
            }
            float mc = sc / per, mg = sg / per, vc = 0, vg = 0;
            for (int j = 0; j < per; j++)
            {
                float g = CombinedEps(model, ps, i, n, ch, hw, j / hw, j % hw, 1, hasVariance, out _) - mg;
                float c = model[(i * (hasVariance != 0 ? 2 * ch : ch) + j / hw) * hw + j % hw] - mc;
                vc += c * c;
                vg += g * g;
            }
            float ratio = vg > 0 ? XMath.Sqrt(vc / vg) : 1f;
            ps[i * PerSample + SlotEpsScale] = 1f + phi * (ratio - 1f);
        }
    }

    /// <summary>CFG rescale (Lin et al. 2024): sets each sample's eps scale to 1 + phi (std(eps_c) / std(eps_cfg) - 1),
    /// so that eps = phi eps_cfg std(eps_c) / std(eps_cfg) + (1 - phi) eps_cfg. One thread per sample.</summary>
    public static void Rescale(Accelerator acc, ArrayView<float> model, ArrayView<float> ps, int n, int ch, int hw, bool hasVariance, float phi)
    {
        var kernel = KernelCache.Get(acc, "sampling.rescale",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int, float>(RescaleKernel));
        kernel(PerSampleLaunch(acc, n, (long)ch * hw), model, ps, n, ch, hw, hasVariance ? 1 : 0, phi);
    }

    static uint AbsBits(float v) => Interop.FloatAsInt(XMath.Abs(v));

    /// <summary>The smallest |x0| bit pattern b with at least rank + 1 values at or below it: the rank-th order
    /// statistic, exactly (non-negative floats order like their bit patterns).</summary>
    static uint OrderStatistic(ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps, int i, int n, int ch, int hw,
        StepConstants k, int rank)
    {
        uint lo = 0, hi = 0x7F800000;
        while (lo < hi)
        {
            uint mid = lo + (hi - lo) / 2;
            int count = 0;
            for (int j = 0; j < ch * hw; j++)
                if (AbsBits(RawX0(x, model, grad, ps, i, j, n, ch, hw, k, out _, out _)) <= mid) count++;
            if (count >= rank + 1) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    static void ThresholdKernel(ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps, int n, int ch, int hw,
        StepConstants k, float percentile)
    {
        int per = ch * hw, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            // NumPy's percentile: linear interpolation between the order statistics around percentile (per - 1).
            float pos = percentile * (per - 1);
            int rank = (int)pos;
            float lo = Interop.IntAsFloat(OrderStatistic(x, model, grad, ps, i, n, ch, hw, k, rank));
            float hi = rank + 1 < per ? Interop.IntAsFloat(OrderStatistic(x, model, grad, ps, i, n, ch, hw, k, rank + 1)) : lo;
            ps[i * PerSample + SlotThreshold] = XMath.Max(1f, lo + (pos - rank) * (hi - lo));
        }
    }

    /// <summary>Dynamic thresholding (Saharia et al. 2022): sets each sample's clip threshold to
    /// max(1, percentile of |x0|), with x0 as the step kernel will form it. One thread per sample, bisection over
    /// the bit patterns (62 passes over the sample): simple and exact, not fast.</summary>
    public static void Threshold(Accelerator acc, ArrayView<float> x, ArrayView<float> model, ArrayView<float> grad, ArrayView<float> ps,
        int n, int ch, int hw, StepConstants k, float percentile)
    {
        var kernel = KernelCache.Get(acc, "sampling.threshold", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, int, int, int, StepConstants, float>(ThresholdKernel));
        kernel(PerSampleLaunch(acc, n, 62L * ch * hw), x, model, grad, ps, n, ch, hw, k, percentile);
    }

    /// <summary>One thread per sample; on the CPU one thread per core when there is enough work for it.</summary>
    static KernelConfig PerSampleLaunch(Accelerator acc, int n, long workPerSample)
    {
        if (Launch.IsCpu(acc)) return new KernelConfig((int)Math.Clamp(n * workPerSample / 4096, 1, Math.Min(n, acc.NumMultiprocessors)), 1);
        int group = Math.Min(64, acc.MaxNumThreadsPerGroup);
        return new KernelConfig((n + group - 1) / group, group);
    }

    /// <summary>Reads x, the model's eps (twice with CFG), the variance channels, the gradient; writes x_next.</summary>
    public static KernelCost Cost(long elements, StepConstants k)
    {
        double reads = 2 + (k.Cfg != 0 ? 1 : 0) + (k.Learned != 0 ? 1 : 0) + (k.Guide != 0 ? 1 : 0);
        return new((20.0 + (k.Noise != 0 ? 60 : 0)) * elements, 4.0 * elements * (reads + 1));
    }

    /// <summary>The same computations in float64 from the same Philox integers.</summary>
    public static class Reference
    {
        public static double Normal(ulong seed, int j, int id, uint step)
        {
            uint c0 = (uint)j, c1 = (uint)id, c2 = step, c3 = NoiseTag;
            Philox.Rounds(ref c0, ref c1, ref c2, ref c3, (uint)seed, (uint)(seed >> 32));
            return Math.Sqrt(-2 * Math.Log(((c0 >> 8) + 1) / 16777216.0)) * Math.Cos(2 * Math.PI * (c1 >> 8) / 16777216.0);
        }

        public static double[] InitialNoise(int[] ids, int per, ulong seed)
            => Enumerable.Range(0, ids.Length * per).Select(e => Normal(seed, e % per, ids[e / per], InitialStep)).ToArray();

        static double Combined(double[] model, double[] ps, int i, int n, int ch, int hw, int j, StepConstants k, out double eu)
        {
            int cout = k.HasVariance != 0 ? 2 * ch : ch, c = j / hw, p = j % hw;
            double ec = model[(i * cout + c) * hw + p];
            eu = ec;
            if (k.Cfg == 0) return ec;
            eu = model[((n + i) * cout + c) * hw + p];
            return ec + ps[i * PerSample + SlotW] * (ec - eu);
        }

        static double RawX0(double[] x, double[] model, double[]? grad, double[] ps, int i, int j, int n, int ch, int hw, StepConstants k,
            out double eps, out double eu)
        {
            int e = i * ch * hw + j;
            eps = Combined(model, ps, i, n, ch, hw, j, k, out eu) * ps[i * PerSample + SlotEpsScale];
            if (k.Guide == 1) eps -= k.EpsGuide * ps[i * PerSample + SlotS] * grad![e];
            return k.C1 * x[e] - k.C2 * eps;
        }

        public static double[] Step(double[] x, double[] model, double[]? grad, double[] ps, int[] ids, int n, int ch, int hw, StepConstants k, ulong seed)
        {
            int per = ch * hw;
            var next = new double[n * per];
            for (int e = 0; e < n * per; e++)
            {
                int i = e / per, j = e % per, c = j / hw;
                double x0 = RawX0(x, model, grad, ps, i, j, n, ch, hw, k, out _, out double eu);
                double th = ps[i * PerSample + SlotThreshold];
                if (th > 0) x0 = Math.Clamp(x0, -th, th) / th;
                double dir = k.Direction == 0 ? (k.C1 * x[e] - x0) / k.C2 : eu;
                double mean = k.A * x0 + k.B * x[e] + k.E * dir, var = k.Var, std = k.Std;
                if (k.Learned != 0)
                {
                    double f = (model[(i * 2 * ch + ch + c) * hw + j % hw] + 1) / 2, logVar = f * k.LogVarMax + (1 - f) * k.LogVarMin;
                    var = Math.Exp(logVar);
                    std = Math.Exp(0.5 * logVar);
                }
                if (k.Guide == 2) mean += ps[i * PerSample + SlotS] * var * grad![e];
                if (k.Noise != 0) mean += std * Normal(seed, j, ids[i], k.Step);
                next[e] = mean;
            }
            return next;
        }

        /// <summary>The CFG-rescale eps scale of each sample.</summary>
        public static double[] RescaleFactors(double[] model, double[] ps, int n, int ch, int hw, bool hasVariance, double phi)
        {
            var k = new StepConstants { Cfg = 1, HasVariance = hasVariance ? 1 : 0 };
            int per = ch * hw, cout = hasVariance ? 2 * ch : ch;
            return Enumerable.Range(0, n).Select(i =>
            {
                var g = Enumerable.Range(0, per).Select(j => Combined(model, ps, i, n, ch, hw, j, k, out _)).ToArray();
                var c = Enumerable.Range(0, per).Select(j => model[(i * cout + j / hw) * hw + j % hw]).ToArray();
                double Std(double[] v) => Math.Sqrt(v.Select(a => (a - v.Average()) * (a - v.Average())).Sum() / v.Length);
                return 1 + phi * (Std(c) / Std(g) - 1);
            }).ToArray();
        }

        /// <summary>max(1, NumPy percentile of |x0|) per sample.</summary>
        public static double[] Thresholds(double[] x, double[] model, double[]? grad, double[] ps, int n, int ch, int hw, StepConstants k, double percentile)
        {
            int per = ch * hw;
            return Enumerable.Range(0, n).Select(i =>
            {
                var a = Enumerable.Range(0, per).Select(j => Math.Abs(RawX0(x, model, grad, ps, i, j, n, ch, hw, k, out _, out _))).Order().ToArray();
                double pos = percentile * (per - 1);
                int r = (int)pos;
                double v = r + 1 < per ? a[r] + (pos - r) * (a[r + 1] - a[r]) : a[r];
                return Math.Max(1, v);
            }).ToArray();
        }
    }
}
