using System.Runtime.InteropServices;
using KernelDiffusion.Runtime;
using MathNet.Numerics.LinearAlgebra;
// System.Numerics' SIMD Vector<T> clashes by name with MathNet's Vector<T>.
using SimdDouble = System.Numerics.Vector<double>;
using SimdVector = System.Numerics.Vector;

namespace KernelDiffusion.Evaluation;

/// <summary>The mean and covariance of a set of feature vectors: what FID compares.</summary>
public sealed record GaussianStats(double[] Mean, double[,] Covariance, int Count)
{
    /// <summary>Mean and unbiased covariance (divide by n-1), like numpy.cov(rowvar=False) as used by pytorch-fid
    /// and guided-diffusion's evaluator. <paramref name="features"/> is count x dim, row-major.</summary>
    public static GaussianStats Of(float[] features, int count, int dim)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (count < 2) throw new KdException($"gaussian stats: need at least 2 feature rows for an unbiased covariance, got {count}");
        Metrics.CheckRows("gaussian stats", "features", features, count, dim);

        // Two passes (mean first, then centred products), as numpy does: no cancellation from E[x^2] - E[x]^2.
        var mean = new double[dim];
        for (int r = 0; r < count; r++)
            for (int c = 0; c < dim; c++)
            {
                float f = features[(long)r * dim + c];
                // A NaN would otherwise surface much later, as a NaN distance or a failed eigendecomposition.
                if (!float.IsFinite(f)) throw new KdException($"gaussian stats: features row {r} has a non-finite value {f}");
                mean[c] += f;
            }
        for (int c = 0; c < dim; c++) mean[c] /= count;

        // Centred rows go through MathNet's X^T X in chunks, so a 50000 x 2048 set never needs a full double copy.
        const int Chunk = 1024;
        var sum = Matrix<double>.Build.Dense(dim, dim);
        var product = Matrix<double>.Build.Dense(dim, dim);
        for (int r0 = 0; r0 < count; r0 += Chunk)
        {
            int rows = Math.Min(Chunk, count - r0);
            var block = Matrix<double>.Build.Dense(rows, dim, (r, c) => features[(long)(r0 + r) * dim + c] - mean[c]);
            block.TransposeThisAndMultiply(block, product);
            sum.Add(product, sum);
        }

        var cov = new double[dim, dim];
        for (int i = 0; i < dim; i++)
            for (int j = 0; j < dim; j++)
                cov[i, j] = 0.5 * (sum[i, j] + sum[j, i]) / (count - 1); // exactly symmetric whatever the blocking did
        return new GaussianStats(mean, cov, count);
    }
}

/// <summary>Host-side evaluation metrics over feature, probability or logit rows (count x dim, row-major floats),
/// all computed in double.</summary>
public static class Metrics
{
    /// <summary>Fréchet distance |mu1-mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)).</summary>
    /// <remarks>S1 S2 is not symmetric, so sqrtm of it (scipy's route) can go complex on near-singular covariances.
    /// Instead, with R = sqrt(S1), S1 S2 is similar to the symmetric PSD matrix R S2 R, so
    /// Tr sqrt(S1 S2) = sum sqrt(eig(R S2 R)), using only symmetric eigendecompositions.</remarks>
    public static double FrechetDistance(GaussianStats a, GaussianStats b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int dim = a.Mean.Length;
        CheckStats("a", a);
        CheckStats("b", b);
        if (b.Mean.Length != dim) throw new KdException($"frechet distance: dimensions differ, {dim} (a) and {b.Mean.Length} (b)");

        var s1 = Matrix<double>.Build.DenseOfArray(a.Covariance);
        var s2 = Matrix<double>.Build.DenseOfArray(b.Covariance);

        var evd1 = Symmetrize(s1).Evd(Symmetricity.Symmetric);
        // Round-off can make tiny eigenvalues of a PSD matrix slightly negative; they are zero.
        var rootL = Matrix<double>.Build.DiagonalOfDiagonalArray(
            evd1.EigenValues.Select(l => Math.Sqrt(Math.Max(l.Real, 0))).ToArray());
        var v = evd1.EigenVectors;
        var r = v * rootL * v.Transpose();
        var m = Symmetrize(r * s2 * r);
        double traceSqrt = m.Evd(Symmetricity.Symmetric).EigenValues.Sum(l => Math.Sqrt(Math.Max(l.Real, 0)));

        double meanTerm = 0;
        for (int i = 0; i < dim; i++)
        {
            double d = a.Mean[i] - b.Mean[i];
            meanTerm += d * d;
        }
        return meanTerm + s1.Trace() + s2.Trace() - 2 * traceSqrt;
    }

    /// <summary>Inception score exp(E_x KL(p(y|x) || p(y))) per split of count/splits consecutive rows (the rows
    /// left over after the last full split are dropped, as in the reference implementation); the mean and the
    /// population std over splits. <paramref name="probs"/> rows are softmax outputs.</summary>
    public static (double Mean, double Std) InceptionScore(float[] probs, int count, int classes, int splits = 10)
    {
        ArgumentNullException.ThrowIfNull(probs);
        CheckRows("inception score", "probs", probs, count, classes);
        if (splits < 1 || splits > count) throw new KdException($"inception score: splits must be in 1..{count} (the row count), got {splits}");
        for (int r = 0; r < count; r++)
        {
            double rowSum = 0;
            for (int c = 0; c < classes; c++)
            {
                float p = probs[(long)r * classes + c];
                if (p < 0) throw new KdException($"inception score: probs row {r} has a negative entry {p}: pass softmax outputs, not logits");
                rowSum += p;
            }
            // Loose: float softmax rows sum to 1 only to rounding, but logits would be far off.
            if (Math.Abs(rowSum - 1) > 1e-3) throw new KdException($"inception score: probs row {r} sums to {rowSum}, not 1: pass softmax outputs, not logits");
        }

        int size = count / splits;
        var scores = new double[splits];
        var marginal = new double[classes];
        for (int s = 0; s < splits; s++)
        {
            int r0 = s * size;
            Array.Clear(marginal);
            for (int r = r0; r < r0 + size; r++)
                for (int c = 0; c < classes; c++) marginal[c] += probs[(long)r * classes + c];
            for (int c = 0; c < classes; c++) marginal[c] /= size;

            double kl = 0;
            for (int r = r0; r < r0 + size; r++)
                for (int c = 0; c < classes; c++)
                {
                    double p = probs[(long)r * classes + c];
                    // p log p -> 0 as p -> 0; and p > 0 implies marginal[c] > 0, so no log(0) is ever taken.
                    if (p > 0) kl += p * (Math.Log(p) - Math.Log(marginal[c]));
                }
            scores[s] = Math.Exp(kl / size);
        }

        double mean = scores.Average();
        double std = Math.Sqrt(scores.Sum(x => (x - mean) * (x - mean)) / splits);
        return (mean, std);
    }

    /// <summary>Improved precision and recall (Kynkäänniemi et al. 2019). Each point's radius is the Euclidean distance
    /// to its k-th nearest neighbour in its own set (itself excluded). Precision is the fraction of fake points within
    /// some real point's radius, recall the fraction of real points within some fake point's radius.</summary>
    public static (double Precision, double Recall) PrecisionRecall(float[] real, int realCount, float[] fake, int fakeCount, int dim, int k = 3)
    {
        ArgumentNullException.ThrowIfNull(real);
        ArgumentNullException.ThrowIfNull(fake);
        CheckRows("precision/recall", "real", real, realCount, dim);
        CheckRows("precision/recall", "fake", fake, fakeCount, dim);
        if (k < 1) throw new KdException($"precision/recall: k must be at least 1, got {k}");
        if (k >= realCount || k >= fakeCount)
            throw new KdException($"precision/recall: k = {k} needs more than k points in each set, got {realCount} real and {fakeCount} fake");

        var x = ToDouble("real", real, dim);
        var y = ToDouble("fake", fake, dim);
        var realRadii2 = KthNeighbourDistances2(x, realCount, dim, k);
        var fakeRadii2 = KthNeighbourDistances2(y, fakeCount, dim, k);
        double precision = (double)CountCovered(y, fakeCount, x, realRadii2, realCount, dim) / fakeCount;
        double recall = (double)CountCovered(x, realCount, y, fakeRadii2, fakeCount, dim) / realCount;
        return (precision, recall);
    }

    /// <summary>The fraction of rows whose argmax (first one on ties) equals the label.</summary>
    public static double Accuracy(float[] probsOrLogits, int count, int classes, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(probsOrLogits);
        ArgumentNullException.ThrowIfNull(labels);
        CheckRows("accuracy", "probs/logits", probsOrLogits, count, classes);
        if (labels.Count != count) throw new KdException($"accuracy: {labels.Count} labels for {count} rows");

        int correct = 0;
        for (int r = 0; r < count; r++)
        {
            int label = labels[r];
            if (label < 0 || label >= classes) throw new KdException($"accuracy: label {label} of row {r} is outside 0..{classes - 1}");
            var row = probsOrLogits.AsSpan((int)((long)r * classes), classes);
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            if (best == label) correct++;
        }
        return (double)correct / count;
    }

    internal static void CheckRows(string metric, string name, float[] data, int count, int dim)
    {
        if (count < 1) throw new KdException($"{metric}: {name} needs at least 1 row, got {count}");
        if (dim < 1) throw new KdException($"{metric}: {name} needs a dimension of at least 1, got {dim}");
        if (data.LongLength != (long)count * dim)
            throw new KdException($"{metric}: {name} has {data.LongLength} values, expected {count} x {dim} = {(long)count * dim}");
    }

    static void CheckStats(string name, GaussianStats s)
    {
        int dim = s.Mean.Length;
        if (dim < 1) throw new KdException($"frechet distance: {name} has an empty mean");
        if (s.Covariance.GetLength(0) != dim || s.Covariance.GetLength(1) != dim)
            throw new KdException($"frechet distance: {name} has a {s.Covariance.GetLength(0)} x {s.Covariance.GetLength(1)} covariance for a mean of length {dim}");
    }

    static Matrix<double> Symmetrize(Matrix<double> m) => (m + m.Transpose()) * 0.5;

    // Non-finite features would silently poison every distance comparison, so they are rejected up front.
    static double[] ToDouble(string name, float[] data, int dim)
    {
        var result = new double[data.Length];
        for (int i = 0; i < data.Length; i++)
        {
            if (!float.IsFinite(data[i])) throw new KdException($"precision/recall: {name} row {i / dim} has a non-finite value {data[i]}");
            result[i] = data[i];
        }
        return result;
    }

    // Rows are handled in blocks against each row of the other set, so the other row stays in L1 while the block
    // reuses it: streaming the whole set once per row would be memory-bound at 10^4+ points.
    const int Block = 32;

    /// <summary>Squared distance from each row to its k-th nearest other row in the same set.</summary>
    static double[] KthNeighbourDistances2(double[] x, int n, int dim, int k)
    {
        var result = new double[n];
        Parallel.For(0, (n + Block - 1) / Block, b =>
        {
            int i0 = b * Block, i1 = Math.Min(n, i0 + Block);
            // Per row of the block, its k smallest squared distances so far, ascending.
            var nearest = new double[(i1 - i0) * k];
            Array.Fill(nearest, double.PositiveInfinity);
            for (int j = 0; j < n; j++)
            {
                var other = x.AsSpan(j * dim, dim);
                for (int i = i0; i < i1; i++)
                {
                    if (i == j) continue; // by index, so duplicate points still count as neighbours at distance 0
                    var kept = nearest.AsSpan((i - i0) * k, k);
                    double d = Distance2(x.AsSpan(i * dim, dim), other);
                    if (d >= kept[k - 1]) continue;
                    int pos = k - 1;
                    for (; pos > 0 && kept[pos - 1] > d; pos--) kept[pos] = kept[pos - 1];
                    kept[pos] = d;
                }
            }
            for (int i = i0; i < i1; i++) result[i] = nearest[(i - i0) * k + k - 1];
        });
        return result;
    }

    /// <summary>How many query rows lie within (distance &lt;= radius) at least one centre's ball.</summary>
    static int CountCovered(double[] queries, int nq, double[] centres, double[] radii2, int nc, int dim)
    {
        int total = 0;
        Parallel.For(0, (nq + Block - 1) / Block, b =>
        {
            int i0 = b * Block, i1 = Math.Min(nq, i0 + Block);
            var covered = new bool[i1 - i0];
            int remaining = i1 - i0;
            for (int j = 0; j < nc && remaining > 0; j++)
            {
                var centre = centres.AsSpan(j * dim, dim);
                for (int i = i0; i < i1; i++)
                {
                    if (covered[i - i0] || Distance2(queries.AsSpan(i * dim, dim), centre) > radii2[j]) continue;
                    covered[i - i0] = true;
                    remaining--;
                }
            }
            Interlocked.Add(ref total, i1 - i0 - remaining);
        });
        return total;
    }

    static double Distance2(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        // Two independent accumulators hide the add latency; unchecked loads (the loop bounds keep them inside
        // both spans) avoid a slice per vector in what is the innermost loop of an O(n m dim) search.
        ref double pa = ref MemoryMarshal.GetReference(a);
        ref double pb = ref MemoryMarshal.GetReference(b);
        int w = SimdDouble.Count, n = Math.Min(a.Length, b.Length), i = 0;
        SimdDouble acc0 = SimdDouble.Zero, acc1 = SimdDouble.Zero;
        for (; i <= n - 2 * w; i += 2 * w)
        {
            var d0 = SimdVector.LoadUnsafe(ref pa, (nuint)i) - SimdVector.LoadUnsafe(ref pb, (nuint)i);
            var d1 = SimdVector.LoadUnsafe(ref pa, (nuint)(i + w)) - SimdVector.LoadUnsafe(ref pb, (nuint)(i + w));
            acc0 += d0 * d0;
            acc1 += d1 * d1;
        }
        for (; i <= n - w; i += w)
        {
            var d = SimdVector.LoadUnsafe(ref pa, (nuint)i) - SimdVector.LoadUnsafe(ref pb, (nuint)i);
            acc0 += d * d;
        }
        double sum = SimdVector.Sum(acc0 + acc1);
        for (; i < n; i++)
        {
            double d = a[i] - b[i];
            sum += d * d;
        }
        return sum;
    }
}
