using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>An analytic data law behind the sampler's interfaces, for testing samplers and guidance exactly: class k
/// is N(mu_k, std_k^2 I) in D dimensions with prior weight pi_k, so at noise level abar the noised class law is
/// N(sqrt(abar) mu_k, (abar std_k^2 + 1 - abar) I) and everything is closed form: eps(x, k) = -sqrt(1 - abar) score_k(x),
/// the unconditional eps from the mixture's score (or from a separately given law, for guidance tests), and the
/// classifier gradient d/dx log p(k | x_t) = score_k(x) - score_mixture(x). Evaluated in float64 on the host.
/// Samples are [N, D, 1, 1] "images"; the null label is K.</summary>
public sealed class GaussianMixture : IDenoiser, IGuidanceGradient
{
    public sealed record Component(double[] Mean, double Std, double Weight = 1);

    readonly Component[] classes, unconditional;
    readonly Func<double, double> alphaBarAt;

    /// <param name="alphaBarAt">abar for a model timestep (see <see cref="AlphaBar"/>).</param>
    /// <param name="unconditional">The law behind the null label; the mixture of the classes when null.</param>
    public GaussianMixture(Component[] classes, Func<double, double> alphaBarAt, Component[]? unconditional = null)
    {
        if (classes.Length == 0 || classes.Any(c => c.Mean.Length != classes[0].Mean.Length || !(c.Std > 0) || !(c.Weight > 0)))
            throw new KdException("gaussian mixture: components need equal dimensions, positive std and weight");
        this.classes = classes;
        this.unconditional = unconditional ?? classes;
        this.alphaBarAt = alphaBarAt;
    }

    public int Dimensions => classes[0].Mean.Length;
    public int Channels => Dimensions;
    public int ImageSize => 1;
    public int NumClasses => classes.Length + 1;
    int IGuidanceGradient.NumClasses => classes.Length;
    public int? NullLabel => classes.Length;
    public bool LearnsSigma => false;

    /// <summary>abar as a function of the model timestep: the discrete schedule's value at t, or sigmoid(lambda(t / 1000))
    /// for the logsnr schedule.</summary>
    public static Func<double, double> AlphaBar(string schedule, int timesteps)
    {
        if (schedule == "logsnr")
        {
            var l = new LogSnrSchedule();
            return t => Math.Pow(LogSnrSchedule.Alpha(l.Lambda(t / 1000)), 2);
        }
        var s = NoiseSchedule.Named(schedule, timesteps);
        return t => s.AlphasCumprod[(int)Math.Round(t)];
    }

    /// <summary>The score d/dx log p_t(x) of a mixture at noise level abar.</summary>
    public static double[] Score(Component[] mix, ReadOnlySpan<double> x, double abar)
    {
        int dims = x.Length;
        double a = Math.Sqrt(abar);
        var logp = new double[mix.Length];
        var v = new double[mix.Length];
        for (int k = 0; k < mix.Length; k++)
        {
            v[k] = abar * mix[k].Std * mix[k].Std + 1 - abar;
            double r2 = 0;
            for (int j = 0; j < dims; j++) r2 += (x[j] - a * mix[k].Mean[j]) * (x[j] - a * mix[k].Mean[j]);
            logp[k] = Math.Log(mix[k].Weight) - 0.5 * dims * Math.Log(v[k]) - r2 / (2 * v[k]);
        }
        double max = logp.Max(), z = logp.Sum(l => Math.Exp(l - max));
        var score = new double[dims];
        for (int k = 0; k < mix.Length; k++)
        {
            double resp = Math.Exp(logp[k] - max) / z;
            for (int j = 0; j < dims; j++) score[j] -= resp * (x[j] - a * mix[k].Mean[j]) / v[k];
        }
        return score;
    }

    float[] PerRow(Tensor x, Tensor t, Func<int, ReadOnlySpan<double>, double, double[]> row)
    {
        int n = x.Dim(0), dims = Dimensions;
        if (x.Length != n * dims) throw new KdException($"gaussian mixture: input {x.ShapeText} is not [N, {dims}, 1, 1]");
        var xs = x.ToArray().Select(v => (double)v).ToArray();
        var ts = t.ToArray();
        var result = new float[n * dims];
        for (int i = 0; i < n; i++)
        {
            var r = row(i, xs.AsSpan(i * dims, dims), alphaBarAt(ts[i]));
            for (int j = 0; j < dims; j++) result[i * dims + j] = (float)r[j];
        }
        return result;
    }

    Tensor Upload(ComputeDevice d, float[] values, int[] shape, string name)
    {
        var o = d.Temporary(shape, name);
        o.CopyFrom(values);
        return o;
    }

    public Tensor Predict(Tensor x, Tensor t, int[]? labels)
    {
        var eps = PerRow(x, t, (i, xi, ab) =>
        {
            var mix = labels == null || labels[i] == classes.Length ? unconditional : [classes[labels[i]]];
            return Score(mix, xi, ab).Select(v => -Math.Sqrt(1 - ab) * v).ToArray();
        });
        return Upload(x.Device, eps, x.Shape, "mixture_eps");
    }

    /// <summary>The same law as an unconditional denoiser (no labels: the null label's law), for classifier guidance.</summary>
    public IDenoiser Unconditional => new UnconditionalView(this);

    sealed class UnconditionalView(GaussianMixture m) : IDenoiser
    {
        public int Channels => m.Channels;
        public int ImageSize => 1;
        public int NumClasses => 0;
        public int? NullLabel => null;
        public bool LearnsSigma => false;
        public Tensor Predict(Tensor x, Tensor t, int[]? labels) => m.Predict(x, t, null);
    }

    public Tensor Gradient(Tensor x, Tensor t, int[] labels)
    {
        var g = PerRow(x, t, (i, xi, ab) =>
        {
            var own = Score([classes[labels[i]]], xi, ab);
            var all = Score(classes, xi, ab);
            return own.Select((v, j) => v - all[j]).ToArray();
        });
        return Upload(x.Device, g, x.Shape, "mixture_grad");
    }
}
