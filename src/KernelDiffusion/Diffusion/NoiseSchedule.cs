using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>A discrete noise schedule and the quantities guided-diffusion's GaussianDiffusion derives from it, in
/// float64: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for t = 0 .. T-1.</summary>
public sealed class NoiseSchedule
{
    public string Name { get; }
    public int T => Betas.Length;
    public double[] Betas { get; }
    public double[] AlphasCumprod { get; }
    public double[] AlphasCumprodPrev { get; }
    public double[] SqrtAlphasCumprod { get; }
    public double[] SqrtOneMinusAlphasCumprod { get; }
    /// <summary>beta_t (1 - abar_{t-1}) / (1 - abar_t): the variance of q(x_{t-1} | x_t, x_0).</summary>
    public double[] PosteriorVariance { get; }
    /// <summary>log of the posterior variance, with its t = 1 value at t = 0 (where it is 0).</summary>
    public double[] PosteriorLogVarianceClipped { get; }
    public double[] PosteriorMeanCoef1 { get; }
    public double[] PosteriorMeanCoef2 { get; }

    public NoiseSchedule(string name, double[] betas)
    {
        if (betas.Length < 2 || betas.Any(b => !(b > 0 && b <= 1)))
            throw new KdException($"schedule '{name}': betas must lie in (0, 1] and number at least 2");
        Name = name;
        Betas = betas;
        int n = betas.Length;
        AlphasCumprod = new double[n];
        double acc = 1;
        for (int i = 0; i < n; i++) AlphasCumprod[i] = acc *= 1 - betas[i];
        AlphasCumprodPrev = [1.0, .. AlphasCumprod[..^1]];
        SqrtAlphasCumprod = AlphasCumprod.Select(Math.Sqrt).ToArray();
        SqrtOneMinusAlphasCumprod = AlphasCumprod.Select(a => Math.Sqrt(1 - a)).ToArray();
        PosteriorVariance = Enumerable.Range(0, n).Select(i => betas[i] * (1 - AlphasCumprodPrev[i]) / (1 - AlphasCumprod[i])).ToArray();
        PosteriorLogVarianceClipped = Enumerable.Range(0, n).Select(i => Math.Log(PosteriorVariance[i == 0 ? 1 : i])).ToArray();
        PosteriorMeanCoef1 = Enumerable.Range(0, n).Select(i => betas[i] * Math.Sqrt(AlphasCumprodPrev[i]) / (1 - AlphasCumprod[i])).ToArray();
        PosteriorMeanCoef2 = Enumerable.Range(0, n).Select(i => (1 - AlphasCumprodPrev[i]) * Math.Sqrt(1 - betas[i]) / (1 - AlphasCumprod[i])).ToArray();
    }

    /// <summary>guided-diffusion's get_named_beta_schedule: "linear" (betas from 1e-4 to 0.02 scaled by 1000 / T)
    /// or "cosine" (Nichol and Dhariwal: abar(t) = cos^2((t/T + 0.008) / 1.008 * pi/2), betas capped at 0.999).</summary>
    public static NoiseSchedule Named(string name, int steps)
    {
        if (steps < 2) throw new KdException($"schedule: {steps} timesteps are too few (at least 2)");
        switch (name)
        {
            case "linear":
                double scale = 1000.0 / steps, start = scale * 0.0001, end = scale * 0.02;
                return new NoiseSchedule(name, Enumerable.Range(0, steps).Select(i => start + (end - start) * i / (steps - 1)).ToArray());
            case "cosine":
                static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
                return new NoiseSchedule(name, Enumerable.Range(0, steps)
                    .Select(i => Math.Min(1 - AlphaBar((i + 1.0) / steps) / AlphaBar((double)i / steps), 0.999)).ToArray());
            default:
                throw new KdException($"schedule '{name}' is unknown (linear, cosine; logsnr is continuous: see LogSnrSchedule)");
        }
    }
}

/// <summary>The continuous schedule of Ho and Salimans: lambda(u) = -2 log tan(a u + b) for u in [0, 1], with
/// b = atan(exp(-lambda_max / 2)) and a = atan(exp(-lambda_min / 2)) - b, so lambda runs from lambda_max (u = 0, clean)
/// to lambda_min (u = 1, noise); alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda).</summary>
public sealed record LogSnrSchedule(double LambdaMin = -20, double LambdaMax = 20)
{
    double B => Math.Atan(Math.Exp(-LambdaMax / 2));
    double A => Math.Atan(Math.Exp(-LambdaMin / 2)) - B;

    public double Lambda(double u) => -2 * Math.Log(Math.Tan(A * u + B));
    public static double Alpha(double lambda) => Math.Sqrt(1 / (1 + Math.Exp(-lambda)));
    public static double Sigma(double lambda) => Math.Sqrt(1 / (1 + Math.Exp(lambda)));

    /// <summary>The number the model sees as its timestep for u: 1000 u, on the scale of the discrete schedules.</summary>
    public static double ModelTime(double u) => 1000 * u;
}
