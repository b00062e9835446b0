using System.Globalization;
using System.Security.Cryptography;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Data;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Evaluation;

/// <summary>What an evaluation classifier sees in a set of images: its penultimate features (FID, precision and
/// recall), the first channels of its last feature map (sFID), and its class probabilities (Inception-style score,
/// accuracy). Rows are images.</summary>
public sealed record FeatureSet(int Count, float[] Pooled, int PooledDim, float[] Spatial, int SpatialDim, float[] Probs, int Classes)
{
    /// <summary>Channels of the last feature map kept as spatial features (sFID keeps 7 of Inception's mixed_6).</summary>
    public const int SpatialChannels = 8;

    GaussianStats? pooledStats, spatialStats;

    /// <summary>Mean and covariance of the pooled and the spatial features, computed once: a sweep compares every
    /// scale's samples with the same reference.</summary>
    public GaussianStats PooledStats => pooledStats ??= GaussianStats.Of(Pooled, Count, PooledDim);
    public GaussianStats SpatialStats => spatialStats ??= GaussianStats.Of(Spatial, Count, SpatialDim);

    /// <summary>Runs the classifier at t = 0 on images [count, C, H, W] in [-1, 1], in batches, on our kernels.</summary>
    public static FeatureSet Extract(ComputeDevice d, Classifier net, float[] images, int count, int batch = 100, Action<int, int>? progress = null)
    {
        var c = net.Config;
        int per = c.InChannels * c.ImageSize * c.ImageSize;
        if (images.Length != (long)count * per)
            throw new KdException($"features: {images.Length} values are not {count} images of {c.InChannels}x{c.ImageSize}x{c.ImageSize} (the feature network's size)");
        float[]? pooled = null, spatial = null, probs = null;
        int pooledDim = 0, spatialDim = 0;
        using (d.Tape.NoGrad())
            for (int first = 0; first < count; first += batch)
            {
                int n = Math.Min(batch, count - first);
                using var x = d.FromArray(images[(first * per)..((first + n) * per)], [n, c.InChannels, c.ImageSize, c.ImageSize], "eval_images");
                using var t = d.Zeros([n], "t");
                var (logits, features, map) = net.ForwardWithFeatures(x, t);
                var kept = Ops.Slice(map, 1, 0, Math.Min(SpatialChannels, map.Dim(1)));
                pooledDim = features.Dim(1);
                spatialDim = kept.Length / n;
                pooled ??= new float[(long)count * pooledDim];
                spatial ??= new float[(long)count * spatialDim];
                probs ??= new float[(long)count * c.OutChannels];
                features.ToArray().CopyTo(pooled, (long)first * pooledDim);
                kept.ToArray().CopyTo(spatial, (long)first * spatialDim);
                Ops.Softmax(logits).ToArray().CopyTo(probs, (long)first * c.OutChannels);
                d.Tape.Reset();
                progress?.Invoke(first + n, count);
            }
        return new FeatureSet(count, pooled ?? [], pooledDim, spatial ?? [], spatialDim, probs ?? [], c.OutChannels);
    }

    public void Save(string path, IReadOnlyDictionary<string, string> metadata)
    {
        SafeTensorsFile.Write(path, [
            new SafeTensorWrite("pooled", [Count, PooledDim], Pooled),
            new SafeTensorWrite("spatial", [Count, SpatialDim], Spatial),
            new SafeTensorWrite("probs", [Count, Classes], Probs),
        ], metadata);
    }

    public static FeatureSet Load(string path)
    {
        var file = SafeTensorsFile.Read(path);
        (float[] Values, int Rows, int Cols) Get(string name)
        {
            if (!file.Contains(name)) throw new KdException($"{path}: no '{name}' features (not a kd eval cache file)");
            var info = file.Info(name);
            if (info.Shape.Length != 2) throw new KdException($"{path}: '{name}' has shape [{string.Join(",", info.Shape)}], not [rows, dims]");
            return (file.ReadFloat32(name), (int)info.Shape[0], (int)info.Shape[1]);
        }
        var (p, n, pd) = Get("pooled");
        var (s, ns, sd) = Get("spatial");
        var (q, nq, classes) = Get("probs");
        if (ns != n || nq != n) throw new KdException($"{path}: its feature tables have {n}, {ns} and {nq} rows");
        return new FeatureSet(n, p, pd, s, sd, q, classes);
    }

    /// <summary>The first 12 hex digits of the file's SHA-256: keys cached reference features to the feature network.</summary>
    public static string FileKey(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream))[..12].ToLowerInvariant();
    }
}

/// <summary>Images to compare samples with: a data set's split ("test", "train") or a FILE.npz of uint8 NHWC images.</summary>
public static class ReferenceImages
{
    public static (float[] Pixels, int Count, string Name) Open(string reference, string data, int size, int channels, int limit = 0)
    {
        if (reference.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
        {
            var (pixels, count, _) = FromNpz(reference, size, channels);
            return limit > 0 && limit < count ? (pixels[..(limit * channels * size * size)], limit, reference) : (pixels, count, reference);
        }
        if (reference is not ("test" or "train")) throw new KdException($"--reference '{reference}' is not test, train or a FILE.npz");
        var set = DataSources.Open(data, train: reference == "train", size: size, channels: channels);
        if (limit > 0 && limit < set.Count) set = set.Take(limit);
        return (set.Pixels, set.Count, $"{data} {reference}");
    }

    /// <summary>NHWC uint8 images of an NPZ as NCHW floats in [-1, 1], with their labels when the file has them.</summary>
    public static (float[] Pixels, int Count, int[]? Labels) FromNpz(string path, int size, int channels)
    {
        var npz = Npz.ReadImages(path);
        if (npz.Height != size || npz.Width != size || npz.Channels != channels)
            throw new KdException($"{path}: images are {npz.Channels}x{npz.Height}x{npz.Width}, the feature network takes {channels}x{size}x{size}");
        int hw = size * size;
        var pixels = new float[(long)npz.Count * channels * hw];
        for (int i = 0; i < npz.Count; i++)
            for (int p = 0; p < hw; p++)
                for (int c = 0; c < channels; c++)
                    pixels[((long)i * channels + c) * hw + p] = npz.Pixels[((long)i * hw + p) * channels + c] / 127.5f - 1f;
        return (pixels, npz.Count, npz.Labels?.Select(l => (int)l).ToArray());
    }

    /// <summary>The reference's features from the cache, or extracted and cached (keyed by data set, split, image
    /// limit and the feature network's file hash). <paramref name="cached"/> says which.</summary>
    public static FeatureSet Features(ComputeDevice d, Classifier net, string netPath, string reference, string data, string cacheDir, int limit,
        out string name, out bool cached, Action<int, int>? progress = null)
    {
        var c = net.Config;
        string path = CachePath(cacheDir, reference, data, netPath, limit);
        name = reference.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) ? reference : $"{data} {reference}";
        if (File.Exists(path))
        {
            cached = true;
            return FeatureSet.Load(path);
        }
        cached = false;
        var (pixels, count, _) = Open(reference, data, c.ImageSize, c.InChannels, limit);
        var features = FeatureSet.Extract(d, net, pixels, count, progress: progress);
        Directory.CreateDirectory(cacheDir);
        features.Save(path, new Dictionary<string, string> { ["reference"] = name, ["feature_net"] = netPath, ["count"] = count.ToString(CultureInfo.InvariantCulture) });
        return features;
    }

    /// <summary>Where cached reference features of (data, split, limit, feature network) live.</summary>
    public static string CachePath(string cacheDir, string reference, string data, string featureNet, int limit = 0)
    {
        string source = (reference.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) ? Path.GetFileNameWithoutExtension(reference) + "-" + FeatureSet.FileKey(reference) : $"{data}-{reference}")
                        + (limit > 0 ? $"-n{limit}" : "");
        string safe = new(source.Select(ch => char.IsLetterOrDigit(ch) || ch is '-' or '_' ? ch : '_').ToArray());
        return Path.Combine(cacheDir, string.Create(CultureInfo.InvariantCulture, $"{safe}-{FeatureSet.FileKey(featureNet)}.safetensors"));
    }
}
