using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace KernelDiffusion.Data;

/// <summary>Reads a folder of PNG and JPEG images with one sub-folder per class (the class names are the sub-folder
/// names). Every image is resized so that its shorter side is the requested size, centre-cropped to a square, and
/// converted to grayscale or RGB. The folder may come from anywhere, so each file is checked before it is decoded.</summary>
public static class ImageFolder
{
    const long MaxFileBytes = 64L << 20;
    const int MaxSide = 8192;
    const long MaxPixels = 40_000_000;
    public const int MaxSize = 1024;

    static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Only the two formats we accept, and no single buffer over 256 MB: more than the largest image the
    /// checks let through needs (MaxPixels at 4 bytes each), so only a decoder tricked into a huge allocation hits it.
    /// ImageSharp 2.1 has no frame limit for PNG or JPEG; neither decoder reads more than one frame.</summary>
    static readonly Configuration Decoding = new(new PngConfigurationModule(), new JpegConfigurationModule())
    {
        MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { AllocationLimitMegabytes = 256 }),
    };

    /// <summary>Reads every image under <paramref name="dir"/> at <paramref name="size"/> x <paramref name="size"/>
    /// with 1 (luminance) or 3 (RGB) channels. Classes come in ordinal order of their folder names, files in
    /// ordinal order of their names within each class.</summary>
    public static ImageDataSet Read(string dir, int size, int channels)
    {
        if (size is < 1 or > MaxSize) throw new KdException($"image size {size} is outside 1..{MaxSize}");
        if (channels is not (1 or 3)) throw new KdException($"{channels} channels: images are read with 1 (grayscale) or 3 (RGB)");
        if (!Directory.Exists(dir)) throw new KdException($"{dir}: folder not found");

        var classDirs = Enumerate(dir, () => Directory.GetDirectories(dir))
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Order(StringComparer.Ordinal).ToArray();
        if (classDirs.Length == 0)
            throw new KdException($"{dir}: no class sub-folders: expected one folder per class holding .png/.jpg/.jpeg files");

        var files = new List<string>();
        var labels = new List<int>();
        for (int c = 0; c < classDirs.Length; c++)
        {
            var classFiles = Enumerate(classDirs[c], () => Directory.GetFiles(classDirs[c]))
                .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
                .Order(StringComparer.Ordinal).ToArray();
            if (classFiles.Length == 0) throw new KdException($"{classDirs[c]}: class folder holds no .png, .jpg or .jpeg files");
            files.AddRange(classFiles);
            labels.AddRange(Enumerable.Repeat(c, classFiles.Length));
        }

        int imageLength = channels * size * size;
        if ((long)files.Count * imageLength > Array.MaxLength)
            throw new KdException($"{dir}: {files.Count} images of {channels}x{size}x{size} are more than one array can hold");
        var pixels = new float[files.Count * imageLength];

        // Decode in parallel; Break lets every earlier file finish, so the error reported is the first in order.
        var errors = new KdException?[files.Count];
        Parallel.For(0, files.Count, (i, loop) =>
        {
            try
            {
                LoadInto(files[i], size, channels, pixels.AsSpan(i * imageLength, imageLength));
            }
            catch (KdException e)
            {
                errors[i] = e;
                loop.Break();
            }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } first) throw first;

        return new ImageDataSet
        {
            Source = dir, Count = files.Count, Channels = channels, Height = size, Width = size,
            Pixels = pixels, Labels = [.. labels], ClassNames = classDirs.Select(d => Path.GetFileName(d)).ToArray(),
        };
    }

    static string[] Enumerate(string dir, Func<string[]> list)
    {
        try
        {
            return list();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KdException($"{dir}: cannot be listed: {e.Message}");
        }
    }

    /// <summary>Checks, decodes and converts one file into <paramref name="dst"/> (CHW, [-1, 1]).</summary>
    static void LoadInto(string path, int size, int channels, Span<float> dst)
    {
        byte[] bytes;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw new KdException($"{path}: {length:N0} bytes, over the {MaxFileBytes >> 20} MiB limit for an image");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KdException($"{path}: cannot be read: {e.Message}");
        }

        using var image = Decode(path, bytes);
        // Turn photos upright as viewers show them (EXIF orientation) before measuring their sides.
        image.Mutate(x => x.AutoOrient());
        var (width, height) = (image.Width, image.Height);
        // Shorter side to size, the longer one in proportion (never below size), then the centre square.
        var (w, h) = width <= height
            ? (size, (int)Math.Max(size, Math.Round((double)height * size / width)))
            : ((int)Math.Max(size, Math.Round((double)width * size / height)), size);
        image.Mutate(x => x
            .Resize(w, h, KnownResamplers.Bicubic)
            .Crop(new Rectangle((w - size) / 2, (h - size) / 2, size, size)));

        int plane = size * size;
        if (channels == 1)
        {
            using var gray = image.CloneAs<L8>();
            var luminance = new L8[plane];
            gray.CopyPixelDataTo(luminance);
            for (int p = 0; p < plane; p++) dst[p] = luminance[p].PackedValue / 127.5f - 1f;
            return;
        }
        var rgb = new Rgb24[plane];
        image.CopyPixelDataTo(rgb);
        for (int p = 0; p < plane; p++)
        {
            dst[p] = rgb[p].R / 127.5f - 1f;
            dst[plane + p] = rgb[p].G / 127.5f - 1f;
            dst[2 * plane + p] = rgb[p].B / 127.5f - 1f;
        }
    }

    /// <summary>Identifies the format and dimensions from the header alone, refuses what is not a PNG or JPEG, is too
    /// large or is cut short, and only then decodes.</summary>
    static Image<Rgb24> Decode(string path, byte[] bytes)
    {
        try
        {
            var format = Image.DetectFormat(Decoding, bytes)
                ?? throw new KdException($"{path}: not a PNG or JPEG image ({bytes.Length} bytes of something else)");
            var info = Image.Identify(Decoding, bytes, out _)
                ?? throw new KdException($"{path}: {format.Name} header cannot be read");
            if (info.Width < 1 || info.Height < 1 || info.Width > MaxSide || info.Height > MaxSide || (long)info.Width * info.Height > MaxPixels)
                throw new KdException($"{path}: {info.Width}x{info.Height} {format.Name} refused before decoding: images may be at most " +
                    $"{MaxSide} pixels a side and {MaxPixels:N0} pixels in all (decompression bomb guard)");
            if ((format is PngFormat ? ImageStructure.PngProblem(bytes) : ImageStructure.JpegProblem(bytes)) is { } problem)
                throw new KdException($"{path}: {format.Name} {problem}");
            return Image.Load<Rgb24>(Decoding, bytes);
        }
        // Decoders fed hostile bytes can fail with more than their documented exceptions; the file is to blame either way.
        catch (Exception e) when (e is not (KdException or OutOfMemoryException))
        {
            throw new KdException($"{path}: corrupt or unsupported image: {e.Message}");
        }
    }
}
