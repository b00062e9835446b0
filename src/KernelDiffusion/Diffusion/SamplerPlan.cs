using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>One step of a sampler: the timestep the model (and the classifier) receive, the noise level
/// sigma = sqrt((1 - abar) / abar) (= exp(-lambda / 2)) that guidance intervals refer to, and the fused kernel's
/// constants.</summary>
public sealed record PlannedStep(double ModelTime, double NoiseLevel, StepConstants Constants);

/// <summary>The steps of each sampler, from the noisiest to the last, in float64 and then rounded once to the
/// kernel's floats.</summary>
public static class SamplerPlan
{
    public static readonly string[] Samplers = ["ddpm", "ddim", "logsnr"];
    public static readonly string[] Variances = ["fixed-small", "fixed-large", "learned"];

    /// <summary>guided-diffusion's space_timesteps: "ddimN" takes range(0, T, stride) for the stride that gives N steps;
    /// otherwise comma-separated counts split [0, T) into equal sections (the first T mod sections one longer), each
    /// strided to its count with Python's round-half-to-even. Returns the kept timesteps, ascending.</summary>
    public static int[] SpaceTimesteps(int t, string spec)
    {
        spec = spec.Trim();
        if (spec.StartsWith("ddim", StringComparison.Ordinal))
        {
            if (!int.TryParse(spec[4..], out int want) || want < 1) throw new KdException($"--steps '{spec}': 'ddimN' needs a positive N");
            for (int stride = 1; stride < t; stride++)
                if ((t + stride - 1) / stride == want) return Enumerable.Range(0, want).Select(i => i * stride).ToArray();
            throw new KdException($"--steps '{spec}': no integer stride gives exactly {want} steps out of {t} (try a plain count such as '{want}')");
        }
        var counts = spec.Split(',').Select(p => int.TryParse(p.Trim(), out int v) && v >= 1 ? v
            : throw new KdException($"--steps '{spec}': '{p}' is not a positive count (forms: 250, 10,15,20, ddim25)")).ToArray();
        if (counts.Sum() > t) throw new KdException($"--steps '{spec}': {counts.Sum()} steps are more than the schedule's {t} timesteps");
        int sizePer = t / counts.Length, extra = t % counts.Length, start = 0;
        var all = new SortedSet<int>();
        for (int i = 0; i < counts.Length; i++)
        {
            int size = sizePer + (i < extra ? 1 : 0);
            if (size < counts[i])
                throw new KdException($"--steps '{spec}': section {i} has {size} of the schedule's {t} timesteps and cannot take {counts[i]} steps");
            double stride = counts[i] <= 1 ? 1 : (size - 1.0) / (counts[i] - 1), cur = 0;
            for (int k = 0; k < counts[i]; k++, cur += stride) all.Add(start + (int)Math.Round(cur, MidpointRounding.ToEven));
            start += size;
        }
        return [.. all];
    }

    /// <summary>The schedule restricted to the kept timesteps, as guided-diffusion's SpacedDiffusion rebuilds it:
    /// beta'_k = 1 - abar[use_k] / abar[use_(k-1)].</summary>
    public static NoiseSchedule Respace(NoiseSchedule s, int[] use)
    {
        double last = 1;
        var betas = new double[use.Length];
        for (int k = 0; k < use.Length; k++)
        {
            betas[k] = 1 - s.AlphasCumprod[use[k]] / last;
            last = s.AlphasCumprod[use[k]];
        }
        return new NoiseSchedule(s.Name + " respaced", betas);
    }

    static StepConstants X0From(double abar) => new()
    {
        C1 = (float)Math.Sqrt(1 / abar), C2 = (float)Math.Sqrt(1 / abar - 1), EpsGuide = (float)Math.Sqrt(1 - abar),
    };

    /// <summary>DDPM ancestral steps (Ho et al.): mean = coef1 x0 + coef2 x_t; variance fixed-small (the posterior's),
    /// fixed-large (beta, with the posterior's at t = 0) or learned (the model's v between the two logs).</summary>
    public static PlannedStep[] Ddpm(NoiseSchedule full, int[] use, string variance)
    {
        var s = Respace(full, use);
        return Enumerable.Range(0, use.Length).Reverse().Select(k =>
        {
            var c = X0From(s.AlphasCumprod[k]);
            c.A = (float)s.PosteriorMeanCoef1[k];
            c.B = (float)s.PosteriorMeanCoef2[k];
            c.Noise = k > 0 ? 1 : 0;
            switch (variance)
            {
                case "fixed-small":
                    c.Var = (float)s.PosteriorVariance[k];
                    c.Std = (float)Math.Exp(0.5 * s.PosteriorLogVarianceClipped[k]);
                    break;
                case "fixed-large":
                    double v = k == 0 ? s.PosteriorVariance[1] : s.Betas[k];
                    c.Var = (float)v;
                    c.Std = (float)Math.Sqrt(v);
                    break;
                case "learned":
                    c.Learned = 1;
                    c.LogVarMin = (float)s.PosteriorLogVarianceClipped[k];
                    c.LogVarMax = (float)Math.Log(s.Betas[k]);
                    break;
                default:
                    throw new KdException($"--variance '{variance}' is not one of {string.Join(", ", Variances)}");
            }
            return new PlannedStep(use[k], Math.Sqrt(1 / s.AlphasCumprod[k] - 1), c);
        }).ToArray();
    }

    /// <summary>DDIM (Song et al.): x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z with
    /// sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev); eps is recomputed from the clipped x0.</summary>
    public static PlannedStep[] Ddim(NoiseSchedule full, int[] use, double eta)
    {
        if (!(eta >= 0)) throw new KdException($"--eta {eta} must be at least 0");
        var s = Respace(full, use);
        return Enumerable.Range(0, use.Length).Reverse().Select(k =>
        {
            double ab = s.AlphasCumprod[k], prev = s.AlphasCumprodPrev[k];
            double sigma = eta * Math.Sqrt((1 - prev) / (1 - ab)) * Math.Sqrt(1 - ab / prev);
            var c = X0From(ab);
            c.A = (float)Math.Sqrt(prev);
            c.E = (float)Math.Sqrt(Math.Max(0, 1 - prev - sigma * sigma));
            c.Var = (float)(sigma * sigma);
            c.Std = (float)sigma;
            c.Noise = k > 0 && sigma > 0 ? 1 : 0;
            return new PlannedStep(use[k], Math.Sqrt(1 / ab - 1), c);
        }).ToArray();
    }

    /// <summary>The ancestral sampler of Ho and Salimans (Alg. 2) on u = 1, (N-1)/N, ..., 1/N: from lambda to the next,
    /// less noisy lambda', z' ~ N(exp(lambda - lambda') (alpha' / alpha) z + (1 - exp(lambda - lambda')) alpha' x0,
    /// sigma~^2 (1-v) sigma_{lambda|lambda'}^2 v) with sigma~^2 = (1 - r) sigma'^2 and sigma_{lambda|lambda'}^2 =
    /// (1 - r) sigma^2 (variances interpolated in the log); the last step returns the predicted x0.</summary>
    public static PlannedStep[] LogSnr(LogSnrSchedule schedule, int steps, double v)
    {
        if (steps < 1) throw new KdException($"--steps {steps}: the log-SNR sampler needs at least 1 step");
        if (v is < 0 or > 1) throw new KdException($"--logsnr-v {v} must lie in [0, 1]");
        return Enumerable.Range(0, steps).Select(i =>
        {
            double u = (double)(steps - i) / steps, uNext = (double)(steps - i - 1) / steps;
            double l = schedule.Lambda(u), a = LogSnrSchedule.Alpha(l), sg = LogSnrSchedule.Sigma(l);
            var c = new StepConstants { C1 = (float)(1 / a), C2 = (float)(sg / a), EpsGuide = (float)sg };
            if (i == steps - 1) c.A = 1;
            else
            {
                double ln = schedule.Lambda(uNext), an = LogSnrSchedule.Alpha(ln), sn = LogSnrSchedule.Sigma(ln), r = Math.Exp(l - ln);
                c.A = (float)((1 - r) * an);
                c.B = (float)(r * an / a);
                double var = Math.Pow((1 - r) * sn * sn, 1 - v) * Math.Pow((1 - r) * sg * sg, v);
                c.Var = (float)var;
                c.Std = (float)Math.Sqrt(var);
                c.Noise = 1;
            }
            return new PlannedStep(LogSnrSchedule.ModelTime(u), Math.Exp(-l / 2), c);
        }).ToArray();
    }
}
