using KernelDiffusion.Diffusion;
using static KernelDiffusion.Diffusion.GaussianMixture;

namespace KernelDiffusion.Tests;

/// <summary>Samplers and guidance against laws known in closed form: a two-class Gaussian mixture in 2-D whose exact
/// eps and exact classifier sit behind the sampler's interfaces. 4000 samples each: the Monte Carlo standard error of a
/// mean is about 0.004 for a class and 0.009 for the mixture, of a class std about 1.1%; the tolerances below allow
/// that plus the samplers' discretisation error.</summary>
[Collection("device")]
public sealed class AnalyticSamplingTests(DeviceFixture fx)
{
    const int N = 4000;
    static readonly Component Shirt = new([0.6, -0.3], 0.2, 1), Boot = new([-0.5, 0.4], 0.25, 2);
    static readonly Component[] Classes = [Shirt, Boot];

    static SampleOptions Options(string sampler, string steps) => new() { Sampler = sampler, Steps = steps, Clip = "none", Seed = 17 };

    float[] Draw(IDenoiser model, IGuidanceGradient? classifier, string schedule, SampleOptions o, int[]? labels, float w = 0, float s = 0)
    {
        var plan = GuidedSampler.Plan(schedule, 1000, o, false);
        return GuidedSampler.Sample(fx.Device, model, classifier, plan, SampleBatch.Uniform(labels, N, w, s), o);
    }

    static (double[] Mean, double[,] Cov) Moments(float[] x)
    {
        var mean = new double[2];
        for (int i = 0; i < N; i++) { mean[0] += x[2 * i] / (double)N; mean[1] += x[2 * i + 1] / (double)N; }
        var cov = new double[2, 2];
        for (int i = 0; i < N; i++)
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    cov[a, b] += (x[2 * i + a] - mean[a]) * (x[2 * i + b] - mean[b]) / (N - 1);
        return (mean, cov);
    }

    /// <summary>The mixture's exact mean and covariance.</summary>
    static (double[] Mean, double[,] Cov) Exact(Component[] mix)
    {
        double total = mix.Sum(c => c.Weight);
        var mean = new double[2];
        var cov = new double[2, 2];
        foreach (var c in mix)
            for (int a = 0; a < 2; a++) mean[a] += c.Weight / total * c.Mean[a];
        foreach (var c in mix)
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    cov[a, b] += c.Weight / total * ((a == b ? c.Std * c.Std : 0) + (c.Mean[a] - mean[a]) * (c.Mean[b] - mean[b]));
        return (mean, cov);
    }

    static void AssertLaw(float[] x, Component[] law, double meanTol, double covRelTol, string what)
    {
        var (m, c) = Moments(x);
        var (em, ec) = Exact(law);
        double scale = Math.Max(ec[0, 0], ec[1, 1]);
        for (int a = 0; a < 2; a++)
        {
            Assert.True(Math.Abs(m[a] - em[a]) < meanTol, $"{what}: mean[{a}] {m[a]:F4}, exact {em[a]:F4}");
            for (int b = 0; b < 2; b++)
                Assert.True(Math.Abs(c[a, b] - ec[a, b]) < covRelTol * scale, $"{what}: cov[{a},{b}] {c[a, b]:F5}, exact {ec[a, b]:F5}");
        }
    }

    [Theory]
    [InlineData("ddpm", "1000", "linear")]
    [InlineData("ddim", "1000", "linear")]
    [InlineData("logsnr", "1000", "logsnr")]
    public void WithoutGuidanceEverySamplerReproducesTheMixture(string sampler, string steps, string schedule)
    {
        var m = new GaussianMixture(Classes, AlphaBar(schedule, 1000));
        var o = Options(sampler, steps);
        var x = Draw(m.Unconditional, null, schedule, o, null);
        AssertLaw(x, Classes, 0.03, 0.06, $"{sampler} unconditional");
        // The class weights 1 : 2 survive: a third of the samples lie nearer the first class.
        double first = Enumerable.Range(0, N).Count(i => Dist(x, i, Shirt) < Dist(x, i, Boot)) / (double)N;
        Assert.True(Math.Abs(first - 1 / 3.0) < 0.025, $"{sampler}: {first:P1} of the samples in the first class, want 33.3%");
        var boots = Draw(m, null, schedule, o, Enumerable.Repeat(1, N).ToArray());
        AssertLaw(boots, [Boot], 0.015, 0.06, $"{sampler} conditional");
    }

    static double Dist(float[] x, int i, Component c) => Math.Pow(x[2 * i] - c.Mean[0], 2) + Math.Pow(x[2 * i + 1] - c.Mean[1], 2);

    [Theory]
    [InlineData("ddpm", "1000")]
    [InlineData("ddim", "1000")]
    public void TheExactClassifierAtScaleOneTurnsTheMixtureIntoTheClass(string sampler, string steps)
    {
        // grad log p(x_t) + grad log p(y | x_t) = grad log p(x_t | y) at every noise level: guided samples follow class y.
        var m = new GaussianMixture(Classes, AlphaBar("linear", 1000));
        var x = Draw(m.Unconditional, m, "linear", Options(sampler, steps), Enumerable.Repeat(0, N).ToArray(), s: 1);
        AssertLaw(x, [Shirt], 0.015, 0.06, $"{sampler} classifier-guided");
    }

    [Theory]
    [InlineData("ddpm", "1000", 1.5)]
    [InlineData("ddim", "1000", 3.0)]
    public void CfgFollowsTheTiltedLaw(string sampler, string steps, double w)
    {
        // With p(x | c) = N(mu_c, s^2) and p(x) = N(mu_u, s^2), the guided score (1 + w) score_c - w score_u is, at
        // every noise level, the score of the noised N((1 + w) mu_c - w mu_u, s^2): the tilted law
        // p(x_t | c)^(1 + w) / p(x_t)^w, which the samples must follow.
        var c = new Component([0.3, -0.2], 0.15);
        var u = new Component([0.1, 0.1], 0.15);
        var m = new GaussianMixture([c], AlphaBar("linear", 1000), [u]);
        var x = Draw(m, null, "linear", Options(sampler, steps), new int[N], w: (float)w);
        var tilted = new Component(c.Mean.Select((v, a) => (1 + w) * v - w * u.Mean[a]).ToArray(), 0.15);
        AssertLaw(x, [tilted], 0.015, 0.06, $"{sampler} CFG w {w}");
    }

    /// <summary>At coarse steps every sampler is off the data law by its discretisation (about 10% in the variance
    /// here), so the law the samples must follow is that of the discrete chain: for Gaussian data each step is affine
    /// in x plus Gaussian noise, and its mean and variance follow a float64 recursion written here from the papers'
    /// formulas, independently of SamplerPlan.</summary>
    [Theory]
    [InlineData("ddpm", "50", "fixed-small", 0.0)]
    [InlineData("ddpm", "50", "fixed-large", 0.0)]
    [InlineData("ddim", "20", "auto", 0.0)]
    [InlineData("ddim", "20", "auto", 1.0)]
    [InlineData("logsnr", "16", "auto", 0.0)]
    public void CoarseStepsFollowTheirExactChain(string sampler, string steps, string variance, double eta)
    {
        const int n = 20000;
        var law = new Component([0.3, -0.2], 0.2);
        string schedule = sampler == "logsnr" ? "logsnr" : "linear";
        var alphaBar = AlphaBar(schedule, 1000);
        var m = new GaussianMixture([law], alphaBar);
        var o = Options(sampler, steps) with { Variance = variance, Eta = eta, LogSnrV = 0.3 };
        var plan = GuidedSampler.Plan(schedule, 1000, o, false);
        var x = GuidedSampler.Sample(fx.Device, m, null, plan, SampleBatch.Uniform(new int[n], n, 0, 0), o);

        // The chain for one coordinate with data mean mu: eps(x) = sqrt(1 - ab) (x - sqrt(ab) mu) / (ab s^2 + 1 - ab).
        double s2 = law.Std * law.Std;
        double X0(double xv, double ab, double mu) => (xv - (1 - ab) * (xv - Math.Sqrt(ab) * mu) / (ab * s2 + 1 - ab)) / Math.Sqrt(ab);
        (Func<double, double, double> Next, double NoiseVar)[] chain;
        if (sampler == "logsnr")
        {
            var l = new LogSnrSchedule();
            int count = int.Parse(steps);
            chain = Enumerable.Range(0, count).Select(i =>
            {
                double lam = l.Lambda((count - i) / (double)count), ab = 1 / (1 + Math.Exp(-lam));
                if (i == count - 1) return ((Func<double, double, double>)((xv, mu) => X0(xv, ab, mu)), 0.0);
                double lamNext = l.Lambda((count - i - 1) / (double)count), abN = 1 / (1 + Math.Exp(-lamNext)), r = Math.Exp(lam - lamNext);
                // Ho & Salimans: mean e^(l - l') (a' / a) z + (1 - e^(l - l')) a' x0; variance interpolated in the log.
                double var = Math.Pow((1 - r) * (1 - abN), 1 - 0.3) * Math.Pow((1 - r) * (1 - ab), 0.3);
                return ((xv, mu) => r * Math.Sqrt(abN / ab) * xv + (1 - r) * Math.Sqrt(abN) * X0(xv, ab, mu), var);
            }).ToArray();
        }
        else
        {
            var use = SamplerPlan.SpaceTimesteps(1000, steps);
            var abs = use.Select(t => alphaBar(t)).ToArray();
            chain = Enumerable.Range(0, use.Length).Reverse().Select(k =>
            {
                double ab = abs[k], prev = k > 0 ? abs[k - 1] : 1, beta = 1 - ab / prev;
                if (sampler == "ddim")
                {
                    double sigma = eta * Math.Sqrt((1 - prev) / (1 - ab) * (1 - ab / prev));
                    return ((Func<double, double, double>)((xv, mu) =>
                    {
                        double x0 = X0(xv, ab, mu), e = (xv - Math.Sqrt(ab) * x0) / Math.Sqrt(1 - ab);
                        return Math.Sqrt(prev) * x0 + Math.Sqrt(1 - prev - sigma * sigma) * e;
                    }), sigma * sigma);
                }
                // DDPM: the posterior mean of q(x_{t-1} | x_t, x0); fixed-small is the posterior variance, fixed-large beta.
                double post = beta * (1 - prev) / (1 - ab);
                double noise = k == 0 ? 0 : variance == "fixed-small" ? post : beta;
                return ((xv, mu) => beta * Math.Sqrt(prev) / (1 - ab) * X0(xv, ab, mu) + (1 - prev) * Math.Sqrt(1 - beta) / (1 - ab) * xv, noise);
            }).ToArray();
        }
        for (int a = 0; a < 2; a++)
        {
            double mean = 0, var = 1, mu = law.Mean[a];
            foreach (var (next, noise) in chain)
            {
                double slope = next(1, mu) - next(0, mu);
                mean = next(mean, mu);
                var = slope * slope * var + noise;
            }
            var col = Enumerable.Range(0, n).Select(i => (double)x[2 * i + a]).ToArray();
            double gotMean = col.Average(), gotVar = col.Sum(v => (v - gotMean) * (v - gotMean)) / (n - 1);
            // 4 standard errors: sqrt(var / n) for the mean, var sqrt(2 / n) for the variance.
            Assert.True(Math.Abs(gotMean - mean) < 4 * Math.Sqrt(var / n), $"{sampler} {variance}: mean[{a}] {gotMean:F5}, chain {mean:F5}");
            Assert.True(Math.Abs(gotVar - var) < 4 * var * Math.Sqrt(2.0 / n), $"{sampler} {variance}: var[{a}] {gotVar:F5}, chain {var:F5}, data {s2:F5}");
        }
    }

    [Fact]
    public void GuidanceOutsideItsIntervalChangesNothing()
    {
        var m = new GaussianMixture(Classes, AlphaBar("linear", 1000));
        var o = Options("ddim", "20");
        int[] labels = new int[N];
        var plain = Draw(m, m, "linear", o, labels);
        // Noise levels of the linear schedule run from 0.01 to about 157: nothing lies in [1000, 2000].
        Assert.Equal(plain, Draw(m, m, "linear", o with { IntervalLow = 1000, IntervalHigh = 2000 }, labels, w: 2, s: 3));
        Assert.NotEqual(plain, Draw(m, m, "linear", o with { IntervalLow = 0.5, IntervalHigh = 5 }, labels, w: 2, s: 3));
    }
}
