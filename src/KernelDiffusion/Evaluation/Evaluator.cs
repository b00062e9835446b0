using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KernelDiffusion.Evaluation;

/// <summary>The papers' metrics for one set of samples against reference images, all from one feature network.</summary>
public sealed record EvalResult(string Reference, int Samples, int ReferenceCount, double Fid, double SFid, double IsMean, double IsStd,
    double Precision, double Recall, double? Accuracy)
{
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public const string TableHeader = "| FID | sFID | IS | precision | recall | accuracy |\n|---|---|---|---|---|---|";

    public string TableRow() => string.Create(CultureInfo.InvariantCulture,
        $"| {Fid:F2} | {SFid:F2} | {IsMean:F2} ± {IsStd:F2} | {Precision:F3} | {Recall:F3} | {(Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "-")} |");

    public string ToMarkdown() => new StringBuilder()
        .AppendLine(CultureInfo.InvariantCulture, $"{Samples} samples against {ReferenceCount} images of {Reference}")
        .AppendLine().AppendLine(TableHeader).AppendLine(TableRow()).ToString();
}

public static class Evaluator
{
    /// <summary>Rows in a fixed pseudo-random order. IS splits take consecutive rows, and samples come sorted by class
    /// (a grid row per class): a split of one class has p(y) = p(y | x) and scores about 1 whatever the samples.</summary>
    static float[] Shuffled(float[] rows, int count, int width)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(0).Shuffle(order);
        var result = new float[rows.Length];
        for (int i = 0; i < count; i++) Array.Copy(rows, (long)order[i] * width, result, (long)i * width, width);
        return result;
    }

    /// <summary>FID and precision/recall (k = 3) on the pooled features, sFID on the spatial ones, the Inception-style
    /// score (10 splits) from the class probabilities, and with labels the accuracy of the samples' asked-for classes.</summary>
    public static EvalResult Compare(FeatureSet samples, int[]? labels, FeatureSet reference, string referenceName, int k = 3)
    {
        double fid = Metrics.FrechetDistance(samples.PooledStats, reference.PooledStats);
        double sfid = Metrics.FrechetDistance(samples.SpatialStats, reference.SpatialStats);
        var (isMean, isStd) = Metrics.InceptionScore(Shuffled(samples.Probs, samples.Count, samples.Classes), samples.Count, samples.Classes, Math.Min(10, samples.Count));
        var (precision, recall) = Metrics.PrecisionRecall(reference.Pooled, reference.Count, samples.Pooled, samples.Count, samples.PooledDim, k);
        double? accuracy = labels == null ? null : Metrics.Accuracy(samples.Probs, samples.Count, samples.Classes, labels);
        // A distance is not negative: rounding leaves about -1e-9 for identical sets.
        return new EvalResult(referenceName, samples.Count, reference.Count, Math.Max(0, fid), Math.Max(0, sfid), isMean, isStd, precision, recall, accuracy);
    }
}
