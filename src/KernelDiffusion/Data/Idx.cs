using System.Buffers.Binary;
using System.IO.Compression;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Data;

/// <summary>Reads and writes MNIST-style idx files: a big-endian magic number (0x00000803 for unsigned-byte images
/// with 3 dimensions, 0x00000801 for unsigned-byte labels with 1), one 32-bit big-endian size per dimension, then
/// the raw bytes. Files may be plain or gzip-compressed, told apart by their first bytes, not their names.
/// Every problem with a file is a <see cref="KdException"/> whose message starts with its path.</summary>
public static class Idx
{
    const int ImageMagic = 0x00000803;
    const int LabelMagic = 0x00000801;
    const int ImageHeaderLength = 16;
    const int LabelHeaderLength = 8;
    /// <summary>Limits that no real data set reaches, so that a corrupt header is refused rather than believed.</summary>
    public const int MaxSide = 4096;
    public const int MaxCount = 10_000_000;

    static readonly Dictionary<byte, string> ElementTypes = new()
    {
        [0x08] = "unsigned bytes", [0x09] = "signed bytes", [0x0B] = "shorts",
        [0x0C] = "ints", [0x0D] = "floats", [0x0E] = "doubles",
    };

    /// <summary>Reads an image file and its label file into a one-channel data set with pixels v / 127.5 - 1.</summary>
    public static ImageDataSet Read(string imagesPath, string labelsPath, IReadOnlyList<string> classNames, string sourceName)
    {
        var (count, rows, cols, raw) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != count)
            throw new KdException($"{imagesPath}: holds {count} images but {labelsPath} holds {labels.Length} labels");
        var intLabels = new int[count];
        for (int i = 0; i < count; i++)
        {
            if (labels[i] >= classNames.Count)
                throw new KdException($"{labelsPath}: label {labels[i]} at index {i} is outside the {classNames.Count} classes");
            intLabels[i] = labels[i];
        }
        var pixels = new float[raw.Length];
        for (int i = 0; i < raw.Length; i++) pixels[i] = raw[i] / 127.5f - 1f;
        return new ImageDataSet
        {
            Source = sourceName, Count = count, Channels = 1, Height = rows, Width = cols,
            Pixels = pixels, Labels = intLabels, ClassNames = classNames,
        };
    }

    /// <summary>Reads an image file: its dimensions and its count * rows * cols pixel bytes.</summary>
    public static (int Count, int Rows, int Cols, byte[] Pixels) ReadImages(string path) => WithStream(path, stream =>
    {
        var dims = ReadHeader(stream, path, ImageMagic, ImageHeaderLength, "an idx image file (unsigned bytes, 3 dimensions)");
        long count = dims[0], rows = dims[1], cols = dims[2];
        if (count is < 1 or > MaxCount || rows is < 1 or > MaxSide || cols is < 1 or > MaxSide)
            throw new KdException($"{path}: invalid dimensions in the header: {count} images of {rows}x{cols} " +
                $"(expected 1 to {MaxCount:N0} images of 1 to {MaxSide} pixels a side)");
        long length = count * rows * cols;
        if (length > Array.MaxLength)
            throw new KdException($"{path}: invalid dimensions in the header: {count} images of {rows}x{cols} " +
                $"need {length:N0} bytes, more than one array can hold");
        return ((int)count, (int)rows, (int)cols, ReadPayload(stream, path, (int)length, "pixel"));
    });

    /// <summary>Reads a label file: one byte per image.</summary>
    public static byte[] ReadLabels(string path) => WithStream(path, stream =>
    {
        long count = ReadHeader(stream, path, LabelMagic, LabelHeaderLength, "an idx label file (unsigned bytes, 1 dimension)")[0];
        if (count is < 1 or > MaxCount)
            throw new KdException($"{path}: invalid dimensions in the header: {count} labels (expected 1 to {MaxCount:N0})");
        return ReadPayload(stream, path, (int)count, "label");
    });

    /// <summary>Writes an image file, gzip-compressed or plain.</summary>
    public static void WriteImages(string path, int count, int rows, int cols, byte[] pixels, bool gzip)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if ((long)count * rows * cols != pixels.Length)
            throw new ArgumentException($"{count} images of {rows}x{cols} need {(long)count * rows * cols} bytes, not {pixels.Length}", nameof(pixels));
        Write(path, gzip, [ImageMagic, count, rows, cols], pixels);
    }

    /// <summary>Writes a label file, gzip-compressed or plain.</summary>
    public static void WriteLabels(string path, byte[] labels, bool gzip) => Write(path, gzip, [LabelMagic, labels.Length], labels);

    static void Write(string path, bool gzip, int[] header, byte[] data)
    {
        using var file = File.Create(path);
        using var stream = gzip ? new GZipStream(file, CompressionLevel.SmallestSize) : (Stream)file;
        Span<byte> word = stackalloc byte[4];
        foreach (int value in header)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, value);
            stream.Write(word);
        }
        stream.Write(data);
    }

    /// <summary>Opens the file, decompressing it when it starts with the gzip signature, and turns every I/O and
    /// gzip failure into a <see cref="KdException"/> naming the file.</summary>
    static T WithStream<T>(string path, Func<Stream, T> read)
    {
        if (!File.Exists(path)) throw new KdException($"{path}: file not found");
        try
        {
            using var file = File.OpenRead(path);
            Span<byte> signature = stackalloc byte[2];
            bool gzip = ReadAtMost(file, signature) == 2 && signature[0] == 0x1f && signature[1] == 0x8b;
            file.Position = 0;
            using var stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
            return read(stream);
        }
        catch (InvalidDataException e)
        {
            throw new KdException($"{path}: corrupt gzip stream: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KdException($"{path}: cannot be read: {e.Message}");
        }
    }

    /// <summary>Reads and checks the magic number, then returns the dimension sizes that follow it.</summary>
    static long[] ReadHeader(Stream stream, string path, int magic, int headerLength, string expectedKind)
    {
        var header = new byte[headerLength];
        int got = ReadAtMost(stream, header);
        if (got >= 4)
        {
            int found = BinaryPrimitives.ReadInt32BigEndian(header);
            if (found != magic)
                throw new KdException($"{path}: wrong magic number 0x{found:X8}, expected 0x{magic:X8} for {expectedKind}; " +
                    DescribeMagic(header.AsSpan(0, 4)));
        }
        if (got < headerLength)
            throw new KdException($"{path}: too short for a header: it holds {got} bytes but {expectedKind} needs {headerLength}");
        var dims = new long[(headerLength - 4) / 4];
        for (int i = 0; i < dims.Length; i++) dims[i] = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4 + 4 * i));
        return dims;
    }

    /// <summary>What a file with these first four bytes looks like, to help whoever passed the wrong one.</summary>
    static string DescribeMagic(ReadOnlySpan<byte> m)
    {
        if (m[0] == 0x1f && m[1] == 0x8b) return "it looks like a gzip stream inside a gzip stream (compressed twice)";
        if (m[0] == 0x89 && m[1] == (byte)'P' && m[2] == (byte)'N' && m[3] == (byte)'G') return "it looks like a PNG image";
        if (m[0] == 0 && m[1] == 0 && ElementTypes.TryGetValue(m[2], out var type))
            return (m[2], m[3]) switch
            {
                (0x08, 3) => "it looks like an idx image file",
                (0x08, 1) => "it looks like an idx label file",
                _ => $"it looks like an idx file of {type} with {m[3]} dimensions",
            };
        if (m[2] == 0 && m[3] == 0 && ElementTypes.ContainsKey(m[1])) return "it looks like an idx file written little-endian (byte-swapped)";
        return "it does not look like an idx file";
    }

    /// <summary>Reads exactly <paramref name="expected"/> bytes and checks that the stream ends there. It never
    /// reads past that, so a gzip bomb is refused after one extra byte, and the buffer grows only as data
    /// arrives, so a header that lies about its size cannot make it allocate for it.</summary>
    static byte[] ReadPayload(Stream stream, string path, int expected, string what)
    {
        var data = new byte[Math.Min(expected, 1 << 20)];
        int got = 0;
        while (got < expected)
        {
            if (got == data.Length) Array.Resize(ref data, (int)Math.Min(expected, 2L * data.Length));
            int n = stream.Read(data, got, data.Length - got);
            if (n == 0)
                throw new KdException($"{path}: truncated: holds {got} bytes of {what} data but the header needs {expected}");
            got += n;
        }
        if (stream.ReadByte() != -1)
            throw new KdException($"{path}: trailing bytes after the {expected} bytes of {what} data the header describes");
        return data;
    }

    static int ReadAtMost(Stream stream, Span<byte> buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = stream.Read(buffer[got..]);
            if (n == 0) break;
            got += n;
        }
        return got;
    }
}
