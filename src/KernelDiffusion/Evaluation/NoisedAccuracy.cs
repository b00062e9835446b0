using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Evaluation;

/// <summary>A noise-aware classifier's accuracy on noised images x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with t
/// drawn uniformly within each quarter of [0, T) (the quarters the training log reports), plus at t = 0.</summary>
public sealed record NoisedAccuracy(int Images, double Clean, double[] Quarters)
{
    public static NoisedAccuracy Measure(ComputeDevice d, Classifier net, ImageDataSet set, NoiseSchedule schedule, ulong seed, int batch = 250,
        Action<int, int>? progress = null)
    {
        var c = net.Config;
        if (set.Channels != c.InChannels || set.Height != c.ImageSize || set.Width != c.ImageSize)
            throw new KdException($"eval-classifier: '{set.Source}' has images {set.Channels}x{set.Height}x{set.Width}, the classifier wants {c.InChannels}x{c.ImageSize}x{c.ImageSize}");
        int per = set.ImageLength, T = schedule.T, rounds = 5, done = 0;
        var correct = new int[rounds];
        var rng = new Random((int)(seed % int.MaxValue));
        var x = new float[batch * per];
        var times = new float[batch];
        using (d.Tape.NoGrad())
            for (int round = 0; round < rounds; round++)   // round 0: t = 0; round q + 1: quarter q
                for (int first = 0; first < set.Count; first += batch)
                {
                    int n = Math.Min(batch, set.Count - first);
                    for (int i = 0; i < n; i++)
                    {
                        int t = round == 0 ? 0 : (round - 1) * T / 4 + rng.Next(T / 4);
                        times[i] = t;
                        double a = schedule.SqrtAlphasCumprod[t], s = schedule.SqrtOneMinusAlphasCumprod[t];
                        set.CopyImage(first + i, x, i * per);
                        for (int j = i * per; j < (i + 1) * per; j++) x[j] = (float)(a * x[j] + (round == 0 ? 0 : s * Normal(rng)));
                    }
                    using var xt = d.FromArray(x[..(n * per)], [n, c.InChannels, c.ImageSize, c.ImageSize], "x_t");
                    using var tt = d.FromArray(times[..n], [n], "t");
                    var logits = net.Forward(xt, tt).ToArray();
                    d.Tape.Reset();
                    for (int i = 0; i < n; i++)
                    {
                        int best = 0;
                        for (int k = 1; k < c.OutChannels; k++) if (logits[i * c.OutChannels + k] > logits[i * c.OutChannels + best]) best = k;
                        if (best == set.Labels[first + i]) correct[round]++;
                    }
                    progress?.Invoke(done += n, rounds * set.Count);
                }
        return new NoisedAccuracy(set.Count, correct[0] / (double)set.Count, correct[1..].Select(k => k / (double)set.Count).ToArray());
    }

    static double Normal(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    public string ToMarkdown(int T) =>
        $"| t | accuracy |\n|---|---|\n| 0 (clean) | {Clean:P1} |\n" +
        string.Concat(Quarters.Select((a, q) => $"| {q * T / 4}-{(q + 1) * T / 4 - 1} | {a:P1} |\n")) + $"\n{Images:N0} images.\n";
}
