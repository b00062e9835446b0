namespace KernelDiffusion.Data;

/// <summary>An in-memory image data set: NCHW float32 pixels scaled to [-1, 1] and one integer label per image.
/// The loaders validate everything before building one, so its arrays are always consistent.</summary>
public sealed class ImageDataSet
{
    /// <summary>Where the images came from, for messages and logs: e.g. "fashion-mnist (train)" or the folder path.</summary>
    public required string Source { get; init; }
    public required int Count { get; init; }
    public required int Channels { get; init; }
    public required int Height { get; init; }
    public required int Width { get; init; }
    /// <summary>Count * Channels * Height * Width values, image after image, each in [-1, 1].</summary>
    public required float[] Pixels { get; init; }
    /// <summary>Count labels, each in [0, NumClasses).</summary>
    public required int[] Labels { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }

    public int NumClasses => ClassNames.Count;
    public int ImageLength => Channels * Height * Width;

    /// <summary>Copies image <paramref name="i"/> into <paramref name="dst"/> at <paramref name="offset"/>,
    /// mirrored left-right when <paramref name="flip"/> is set (the usual augmentation).</summary>
    public void CopyImage(int i, float[] dst, int offset, bool flip = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(i);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(i, Count);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, dst.Length - ImageLength);
        var src = Pixels.AsSpan(i * ImageLength, ImageLength);
        if (!flip)
        {
            src.CopyTo(dst.AsSpan(offset));
            return;
        }
        for (int row = 0; row < Channels * Height; row++)
        {
            var to = dst.AsSpan(offset + row * Width, Width);
            src.Slice(row * Width, Width).CopyTo(to);
            to.Reverse();
        }
    }

    /// <summary>Images first .. first + count - 1.</summary>
    public ImageDataSet Range(int first, int count)
    {
        if (first < 0 || count < 1 || first + count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"images {first}..{first + count - 1} are not all in a set of {Count}");
        return new ImageDataSet
        {
            Source = $"{Source} (images {first}..{first + count - 1})", Count = count, Channels = Channels, Height = Height, Width = Width,
            Pixels = Pixels[(first * ImageLength)..((first + count) * ImageLength)], Labels = Labels[first..(first + count)], ClassNames = ClassNames,
        };
    }

    /// <summary>Averages f x f blocks: 28x28 Fashion-MNIST as 14x14 or 7x7 for models small enough for a CPU.</summary>
    public ImageDataSet Downsample(int f)
    {
        if (f < 1 || Height % f != 0 || Width % f != 0) throw new ArgumentOutOfRangeException(nameof(f), $"{Height}x{Width} images do not split into {f}x{f} blocks");
        if (f == 1) return this;
        int h = Height / f, w = Width / f;
        var pixels = new float[(long)Count * Channels * h * w];
        for (long plane = 0; plane < (long)Count * Channels; plane++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    float sum = 0;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++) sum += Pixels[(plane * Height + f * y + dy) * Width + f * x + dx];
                    pixels[(plane * h + y) * w + x] = sum / (f * f);
                }
        return new ImageDataSet
        {
            Source = $"{Source}, averaged to {h}x{w}", Count = Count, Channels = Channels, Height = h, Width = w, Pixels = pixels,
            Labels = Labels, ClassNames = ClassNames,
        };
    }

    /// <summary>The first <paramref name="n"/> images (for fixtures and quick runs); the whole set when it holds
    /// no more than that.</summary>
    public ImageDataSet Take(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (n >= Count) return this;
        return new ImageDataSet
        {
            Source = $"{Source} (first {n})",
            Count = n,
            Channels = Channels,
            Height = Height,
            Width = Width,
            Pixels = Pixels[..(n * ImageLength)],
            Labels = Labels[..n],
            ClassNames = ClassNames,
        };
    }
}
