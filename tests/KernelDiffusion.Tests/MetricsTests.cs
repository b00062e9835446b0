using KernelDiffusion.Evaluation;
using KernelDiffusion.Runtime;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

public sealed class MetricsTests(ITestOutputHelper output)
{
    // ---- Fréchet distance ----

    [Fact]
    public void FrechetDistanceOfDiagonalGaussiansMatchesClosedForm()
    {
        double[] mu1 = [1, -2, 0.5], mu2 = [0, 1, 2];
        double[] a = [4, 1, 0.25], b = [1, 9, 2];
        var s1 = Stats(mu1, Diag(a));
        var s2 = Stats(mu2, Diag(b));
        // Commuting covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt a_i - sqrt b_i)^2.
        double expected = SquaredDistance(mu1, mu2) + a.Zip(b, (x, y) => Math.Pow(Math.Sqrt(x) - Math.Sqrt(y), 2)).Sum();
        Assert.Equal(expected, Metrics.FrechetDistance(s1, s2), 1e-12);

        // The same spectra in a shared rotated basis still commute, so the closed form is unchanged.
        var q = Rotation3(0.3, -0.7, 1.1);
        Assert.Equal(expected, Metrics.FrechetDistance(Stats(mu1, Conjugate(q, a)), Stats(mu2, Conjugate(q, b))), 1e-12);
    }

    [Fact]
    public void FrechetDistanceOfNonCommuting2x2MatchesTraceIdentity()
    {
        double[,] s1 = { { 2, 0.5 }, { 0.5, 1 } }, s2 = { { 1, -0.3 }, { -0.3, 3 } };
        double[] mu1 = [0.5, -1], mu2 = [2, 0];
        Assert.NotEqual(Mul(s1, s2)[0, 1], Mul(s2, s1)[0, 1]);

        // For a 2x2 A with nonnegative real eigenvalues l1, l2: (sqrt l1 + sqrt l2)^2 = tr A + 2 sqrt(det A).
        var p = Mul(s1, s2);
        double det = p[0, 0] * p[1, 1] - p[0, 1] * p[1, 0];
        double traceSqrt = Math.Sqrt(p[0, 0] + p[1, 1] + 2 * Math.Sqrt(det));
        double expected = SquaredDistance(mu1, mu2) + Trace(s1) + Trace(s2) - 2 * traceSqrt;
        Assert.Equal(expected, Metrics.FrechetDistance(Stats(mu1, s1), Stats(mu2, s2)), 1e-12);
    }

    [Fact]
    public void FrechetDistanceOfNonCommuting3x3MatchesCharacteristicPolynomialRoots()
    {
        var (s1, s2) = (Covariance3A(), Covariance3B());
        double[] mu1 = [0, 0, 0], mu2 = [1, 2, -1];
        Assert.NotEqual(Mul(s1, s2)[0, 2], Mul(s2, s1)[0, 2], 6);

        double expected = SquaredDistance(mu1, mu2) + Trace(s1) + Trace(s2) - 2 * TraceSqrtOfProduct3(s1, s2);
        Assert.Equal(expected, Metrics.FrechetDistance(Stats(mu1, s1), Stats(mu2, s2)), 1e-10);
    }

    [Fact]
    public void FrechetDistanceFromSamplesApproachesClosedForm()
    {
        const int n = 20000;
        var (s1, s2) = (Covariance3A(), Covariance3B());
        double[] mu1 = [0, 0, 0], mu2 = [1, 2, -1];
        var rng = new Random(1234);
        var a = GaussianStats.Of(Sample(rng, n, mu1, Cholesky3(s1)), n, 3);
        var b = GaussianStats.Of(Sample(rng, n, mu2, Cholesky3(s2)), n, 3);

        double exact = SquaredDistance(mu1, mu2) + Trace(s1) + Trace(s2) - 2 * TraceSqrtOfProduct3(s1, s2);
        double sampled = Metrics.FrechetDistance(a, b);
        output.WriteLine($"closed form {exact:R}, from {n} samples each {sampled:R}, difference {sampled - exact:E3}");
        // Over 40 seeds the error at n = 20000 had sd 0.06 (mostly from the sample means, 2 dmu . (error in dmu)),
        // so 0.2 is over 3 sd; this seed gives about 0.03.
        Assert.Equal(exact, sampled, 0.2);

        Assert.True(Math.Abs(Metrics.FrechetDistance(a, a)) < 1e-8);
        Assert.True(Math.Abs(Metrics.FrechetDistance(b, b)) < 1e-8);
    }

    [Fact]
    public void GaussianStatsUseUnbiasedCovariance()
    {
        // Rows (1,2), (3,6), (5,7): mean (3,5); centred (-2,-3), (0,1), (2,2); sums of products / (3 - 1).
        var s = GaussianStats.Of([1, 2, 3, 6, 5, 7], 3, 2);
        Assert.Equal(3, s.Count);
        Assert.Equal(new[] { 3.0, 5.0 }, s.Mean);
        Assert.Equal(4.0, s.Covariance[0, 0], 1e-15);
        Assert.Equal(5.0, s.Covariance[0, 1], 1e-15);
        Assert.Equal(5.0, s.Covariance[1, 0], 1e-15);
        Assert.Equal(7.0, s.Covariance[1, 1], 1e-15);
    }

    // ---- Inception score ----

    [Fact]
    public void InceptionScoreOfUniformPredictionsIsOne()
    {
        // 1/4 is exact in float and double, so p(y|x) == p(y) bit for bit and every KL is exactly 0.
        var (mean, std) = Metrics.InceptionScore(Enumerable.Repeat(0.25f, 20 * 4).ToArray(), 20, 4, splits: 5);
        Assert.Equal(1.0, mean);
        Assert.Equal(0.0, std);
        // 1/10 is not exact, so the marginal may differ from p by an ulp.
        Assert.Equal(1.0, Metrics.InceptionScore(Enumerable.Repeat(0.1f, 30 * 10).ToArray(), 30, 10, splits: 3).Mean, 1e-12);
    }

    [Fact]
    public void InceptionScoreOfEvenlySpreadOneHotPredictionsIsClassCount()
    {
        const int classes = 7, count = 70;
        var (mean, std) = Metrics.InceptionScore(OneHotCycling(count, classes), count, classes, splits: 2);
        Assert.Equal(classes, mean, 1e-9);
        Assert.Equal(0.0, std, 1e-12);
    }

    [Fact]
    public void InceptionScoreMatchesHandComputationAndAveragesSplits()
    {
        // Rows (1,0), (0.5,0.5): marginal (0.75, 0.25).
        double kl = (Math.Log(1 / 0.75) + 0.5 * Math.Log(0.5 / 0.75) + 0.5 * Math.Log(0.5 / 0.25)) / 2;
        Assert.Equal(Math.Exp(kl), Metrics.InceptionScore([1, 0, 0.5f, 0.5f], 2, 2, splits: 1).Mean, 1e-14);

        // Split 1 uniform (score 1), split 2 one-hot over 4 classes (score 4), then a leftover row that is dropped.
        var probs = Enumerable.Repeat(0.25f, 8 * 4).Concat(OneHotCycling(8, 4)).Concat([1f, 0, 0, 0]).ToArray();
        var (mean, std) = Metrics.InceptionScore(probs, 17, 4, splits: 2);
        Assert.Equal(2.5, mean, 1e-12);
        Assert.Equal(1.5, std, 1e-12);
    }

    // ---- Precision and recall ----

    [Fact]
    public void PrecisionRecallMatchHandExampleOnALine()
    {
        // Points on the x axis in 2-D. k = 1 radii: real 0, 1, 3 -> 1, 1, 2; fake 0.25, 0.5, 20, 21 -> 0.25, 0.25, 1, 1.
        float[] real = [0, 0, 1, 0, 3, 0];
        float[] fake = [0.25f, 0, 0.5f, 0, 20, 0, 21, 0];
        var (precision, recall) = Metrics.PrecisionRecall(real, 3, fake, 4, 2, k: 1);
        // Fake 0.25 and 0.5 lie in real 0's ball; 20 and 21 lie in none.
        Assert.Equal(0.5, precision);
        // Real 0 lies exactly on fake 0.25's ball boundary (counts); real 1 and 3 lie in no fake ball.
        Assert.Equal(1.0 / 3, recall);
    }

    [Fact]
    public void PrecisionRecallOnSyntheticGaussians()
    {
        const int n = 2000, dim = 4;
        var rng = new Random(7);
        var zero = new double[dim];
        var real = Sample(rng, n, zero, Identity(dim, 1));

        var same = Metrics.PrecisionRecall(real, n, Sample(rng, n, zero, Identity(dim, 1)), n, dim);
        var far = Metrics.PrecisionRecall(real, n, Sample(rng, n, Enumerable.Repeat(10.0, dim).ToArray(), Identity(dim, 1)), n, dim);
        var narrow = Metrics.PrecisionRecall(real, n, Sample(rng, n, zero, Identity(dim, 0.1)), n, dim);
        output.WriteLine($"same distribution: precision {same.Precision}, recall {same.Recall}");
        output.WriteLine($"shifted by +10:    precision {far.Precision}, recall {far.Recall}");
        output.WriteLine($"narrow N(0, 0.1^2 I): precision {narrow.Precision}, recall {narrow.Recall}");

        // Seed 7 gives same (0.9565, 0.956) and narrow (0.979, 0.003); over seeds 1-11 same stayed in 0.95-0.97 and
        // narrow precision in 0.94-1 (the narrow fakes all sit among a handful of real balls, so it varies more).
        Assert.True(same.Precision > 0.9 && same.Recall > 0.9, $"same: {same}");
        Assert.Equal((0.0, 0.0), far);
        Assert.True(narrow.Precision > 0.9, $"narrow: {narrow}");
        Assert.True(narrow.Recall < 0.05, $"narrow: {narrow}");
    }

    // ---- Accuracy ----

    [Fact]
    public void AccuracyCountsArgmaxMatches()
    {
        float[] logits =
        [
            2, -1, 0,     // argmax 0
            -3, -2, -5,   // argmax 1
            0.1f, 0.2f, 0.3f, // argmax 2
            1, 1, 0,      // tie: first, 0
        ];
        Assert.Equal(0.5, Metrics.Accuracy(logits, 4, 3, [0, 1, 0, 1]));
        Assert.Equal(1.0, Metrics.Accuracy(logits, 4, 3, [0, 1, 2, 0]));
    }

    // ---- Bad input ----

    [Fact]
    public void BadInputThrowsKdExceptionNamingTheProblem()
    {
        var e = Assert.Throws<KdException>(() => GaussianStats.Of(new float[5], 3, 2));
        Assert.Contains("5 values, expected 3 x 2", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.FrechetDistance(Stats([0, 0], Diag([1, 1])), Stats([0, 0, 0], Diag([1, 1, 1]))));
        Assert.Contains("dimensions differ", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.InceptionScore(new float[7], 2, 4));
        Assert.Contains("probs has 7 values", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.InceptionScore(Enumerable.Repeat(0.5f, 6).ToArray(), 3, 2, splits: 4));
        Assert.Contains("splits", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.InceptionScore([2f, -1f], 1, 2, splits: 1));
        Assert.Contains("not logits", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.PrecisionRecall(new float[6], 3, new float[7], 3, 2));
        Assert.Contains("fake has 7 values", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.PrecisionRecall(new float[6], 3, new float[8], 4, 2, k: 3));
        Assert.Contains("k = 3", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.Accuracy(new float[6], 2, 3, [0]));
        Assert.Contains("1 labels for 2 rows", e.Message);
        e = Assert.Throws<KdException>(() => Metrics.Accuracy(new float[6], 2, 3, [0, 3]));
        Assert.Contains("label 3", e.Message);
    }

    // ---- helpers ----

    static GaussianStats Stats(double[] mean, double[,] cov) => new(mean, cov, 0);

    static double[,] Diag(double[] d)
    {
        var m = new double[d.Length, d.Length];
        for (int i = 0; i < d.Length; i++) m[i, i] = d[i];
        return m;
    }

    static double[,] Identity(int n, double scale) => Diag(Enumerable.Repeat(scale, n).ToArray());

    static double[,] Mul(double[,] a, double[,] b)
    {
        int n = a.GetLength(0), m = b.GetLength(1), inner = a.GetLength(1);
        var c = new double[n, m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
                for (int k = 0; k < inner; k++) c[i, j] += a[i, k] * b[k, j];
        return c;
    }

    static double[,] Transpose(double[,] a)
    {
        var t = new double[a.GetLength(1), a.GetLength(0)];
        for (int i = 0; i < a.GetLength(0); i++)
            for (int j = 0; j < a.GetLength(1); j++) t[j, i] = a[i, j];
        return t;
    }

    static double Trace(double[,] a) => Enumerable.Range(0, a.GetLength(0)).Sum(i => a[i, i]);

    static double SquaredDistance(double[] a, double[] b) => a.Zip(b, (x, y) => (x - y) * (x - y)).Sum();

    static double[,] Conjugate(double[,] q, double[] d) => Mul(Mul(q, Diag(d)), Transpose(q));

    static double[,] Rotation3(double x, double y, double z)
    {
        double[,] rx = { { 1, 0, 0 }, { 0, Math.Cos(x), -Math.Sin(x) }, { 0, Math.Sin(x), Math.Cos(x) } };
        double[,] ry = { { Math.Cos(y), 0, Math.Sin(y) }, { 0, 1, 0 }, { -Math.Sin(y), 0, Math.Cos(y) } };
        double[,] rz = { { Math.Cos(z), -Math.Sin(z), 0 }, { Math.Sin(z), Math.Cos(z), 0 }, { 0, 0, 1 } };
        return Mul(Mul(rx, ry), rz);
    }

    // Two SPD covariances built as L L^T from lower-triangular factors with no shared structure.
    static double[,] Covariance3A() => Mul(LowerA, Transpose(LowerA));
    static double[,] Covariance3B() => Mul(LowerB, Transpose(LowerB));
    static readonly double[,] LowerA = { { 1.5, 0, 0 }, { 0.4, 0.8, 0 }, { -0.6, 0.3, 1.2 } };
    static readonly double[,] LowerB = { { 0.7, 0, 0 }, { -0.5, 1.4, 0 }, { 0.2, 0.9, 0.6 } };

    /// <summary>Tr sqrtm(S1 S2) for 3x3 SPD S1, S2 without any eigensolver: the eigenvalues of S1 S2 are real and
    /// positive (it is similar to S1^1/2 S2 S1^1/2), so they are the three real roots of its characteristic
    /// cubic, found by the trigonometric method.</summary>
    static double TraceSqrtOfProduct3(double[,] s1, double[,] s2)
    {
        var p = Mul(s1, s2);
        double c2 = Trace(p);
        double c1 = p[0, 0] * p[1, 1] - p[0, 1] * p[1, 0] + p[0, 0] * p[2, 2] - p[0, 2] * p[2, 0] + p[1, 1] * p[2, 2] - p[1, 2] * p[2, 1];
        double c0 = p[0, 0] * (p[1, 1] * p[2, 2] - p[1, 2] * p[2, 1])
                  - p[0, 1] * (p[1, 0] * p[2, 2] - p[1, 2] * p[2, 0])
                  + p[0, 2] * (p[1, 0] * p[2, 1] - p[1, 1] * p[2, 0]);
        // l^3 - c2 l^2 + c1 l - c0 = 0; with l = t + c2/3 this is t^3 + a t + b = 0.
        double a = c1 - c2 * c2 / 3;
        double b = -2 * c2 * c2 * c2 / 27 + c2 * c1 / 3 - c0;
        double r = 2 * Math.Sqrt(-a / 3);
        double phi = Math.Acos(Math.Clamp(3 * b / (a * r), -1, 1)) / 3;
        double sum = 0;
        for (int k = 0; k < 3; k++)
        {
            double l = r * Math.Cos(phi - 2 * Math.PI * k / 3) + c2 / 3;
            Assert.True(l > 0, $"eigenvalue {l} of S1 S2 should be positive");
            sum += Math.Sqrt(l);
        }
        return sum;
    }

    static double[,] Cholesky3(double[,] s)
    {
        var l = new double[3, 3];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j <= i; j++)
            {
                double v = s[i, j];
                for (int k = 0; k < j; k++) v -= l[i, k] * l[j, k];
                l[i, j] = i == j ? Math.Sqrt(v) : v / l[j, j];
            }
        return l;
    }

    /// <summary>n rows of mean + L z, z standard normal by Box-Muller from a seeded Random.</summary>
    static float[] Sample(Random rng, int n, double[] mean, double[,] lower)
    {
        int dim = mean.Length;
        var rows = new float[n * dim];
        var z = new double[dim];
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < dim; i++)
                z[i] = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            for (int i = 0; i < dim; i++)
            {
                double v = mean[i];
                for (int k = 0; k < dim; k++) v += lower[i, k] * z[k];
                rows[r * dim + i] = (float)v;
            }
        }
        return rows;
    }

    static float[] OneHotCycling(int count, int classes)
    {
        var p = new float[count * classes];
        for (int r = 0; r < count; r++) p[r * classes + r % classes] = 1;
        return p;
    }
}
