namespace KernelDiffusion.Data;

/// <summary>An in-memory image data set, NCHW float32 pixels scaled to [-1, 1], integer labels.</summary>
public sealed class ImageDataSet
{
    public required string Source { get; init; }
    public required int Count { get; init; }
    public required int Channels { get; init; }
    public required int Height { get; init; }
    public required int Width { get; init; }
    public required float[] Pixels { get; init; }
    public required int[] Labels { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }
    public int NumClasses => ClassNames.Count;
    public int ImageLength => Channels * Height * Width;

    /// <summary>Copies image i (optionally mirrored left-right) into dst at offset.</summary>
    public void CopyImage(int i, float[] dst, int offset, bool flip = false)
    {
        if (!flip)
        {
            Array.Copy(Pixels, (long)i * ImageLength, dst, offset, ImageLength);
            return;
        }
        for (int r = 0; r < Channels * Height; r++)
            for (int c = 0; c < Width; c++)
                dst[offset + r * Width + c] = Pixels[(long)i * ImageLength + r * Width + Width - 1 - c];
    }

    public ImageDataSet Take(int n) => new()
    {
        Source = Source, Count = Math.Min(n, Count), Channels = Channels, Height = Height, Width = Width,
        Pixels = Pixels[..(Math.Min(n, Count) * ImageLength)], Labels = Labels[..Math.Min(n, Count)], ClassNames = ClassNames,
    };
}
