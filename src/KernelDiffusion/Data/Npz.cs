using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Data;

/// <summary>Images read from an .npz file: NHWC bytes, and the labels when the file holds them.</summary>
public sealed record NpzImages(byte[] Pixels, int Count, int Height, int Width, int Channels, long[]? Labels);

/// <summary>NumPy .npz files as openai/guided-diffusion's sampling script writes them with
/// np.savez(out_path, arr, label_arr): a zip holding arr_0.npy (uint8, shape [N, H, W, C]) and optionally
/// arr_1.npy (int64 labels, shape [N]), so that its evaluation tools read our samples unchanged.
/// Every problem with a file is a <see cref="KdException"/> whose message starts with its path.</summary>
public static partial class Npz
{
    const string ImagesEntry = "arr_0.npy", LabelsEntry = "arr_1.npy";
    static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    /// <summary>NumPy pads the preamble so that the data starts 64-byte aligned.</summary>
    const int Align = 64;
    /// <summary>NumPy's own default limit; a longer header is corrupt, not believed.</summary>
    const int MaxHeaderLength = 10_000;

    public static void WriteImages(string path, byte[] nhwc, int count, int height, int width, int channels, int[]? labels)
    {
        if (count < 0 || height < 1 || width < 1 || channels < 1)
            throw new KdException($"{path}: invalid image shape {count}x{height}x{width}x{channels} (NHWC)");
        if (nhwc.Length != (long)count * height * width * channels)
            throw new KdException($"{path}: {nhwc.Length} bytes are not {count} images of {height}x{width}x{channels} (NHWC)");
        if (labels is not null && labels.Length != count)
            throw new KdException($"{path}: {labels.Length} labels for {count} images");
        AtomicFile.Write(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            WriteArray(zip, ImagesEntry, "|u1", [count, height, width, channels], nhwc);
            if (labels is null) return;
            var data = new byte[8 * labels.Length];
            for (int i = 0; i < labels.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(8 * i), labels[i]);
            WriteArray(zip, LabelsEntry, "<i8", [count], data);
        });
    }

    public static NpzImages ReadImages(string path)
    {
        if (!File.Exists(path)) throw new KdException($"{path}: file not found");
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var entry = zip.GetEntry(ImagesEntry) ?? throw new KdException($"{path}: no {ImagesEntry} in the archive " +
                $"(it holds: {string.Join(", ", zip.Entries.Select(e => e.FullName).DefaultIfEmpty("nothing"))})");
            var (_, shape, pixels) = ReadArray(entry, path, ["|u1"], [4, 3]);
            if (shape.Skip(1).Any(d => d == 0))
                throw new KdException($"{path}: {ImagesEntry}: shape {ShapeText(shape)} has an empty image dimension");
            int count = (int)shape[0], channels = shape.Length == 4 ? (int)shape[3] : 1;
            long[]? labels = null;
            if (zip.GetEntry(LabelsEntry) is { } labelEntry)
            {
                var (descr, labelShape, data) = ReadArray(labelEntry, path, ["<i8", "<i4"], [1]);
                if (labelShape[0] != count)
                    throw new KdException($"{path}: {LabelsEntry}: {labelShape[0]} labels for the {count} images in {ImagesEntry}");
                labels = descr == "<i8"
                    ? Enumerable.Range(0, count).Select(i => BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(8 * i))).ToArray()
                    : Enumerable.Range(0, count).Select(i => (long)BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(4 * i))).ToArray();
            }
            return new NpzImages(pixels, count, (int)shape[1], (int)shape[2], channels, labels);
        }
        catch (InvalidDataException e)
        {
            throw new KdException($"{path}: corrupt or not a zip archive (.npz): {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KdException($"{path}: cannot be read: {e.Message}");
        }
    }

    static void WriteArray(ZipArchive zip, string name, string descr, long[] shape, byte[] data)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(Preamble(descr, shape));
        stream.Write(data);
    }

    /// <summary>A .npy version 1.0 preamble: magic, version, little-endian header length, then the header, a
    /// Python dict literal padded with spaces to the alignment and ended by a newline.</summary>
    static byte[] Preamble(string descr, long[] shape)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {ShapeText(shape)}, }}";
        int unpadded = Magic.Length + 4 + dict.Length + 1;
        string header = dict + new string(' ', (Align - unpadded % Align) % Align) + "\n";
        var preamble = new byte[Magic.Length + 4 + header.Length];
        Magic.CopyTo(preamble, 0);
        preamble[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(preamble.AsSpan(8), (ushort)header.Length);
        Encoding.Latin1.GetBytes(header, preamble.AsSpan(10));
        return preamble;
    }

    /// <summary>A shape as Python writes a tuple: "(3, 5)", "(3,)" with one element, "()" with none.</summary>
    static string ShapeText(long[] shape) => shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";

    /// <summary>Reads one .npy entry, checking its dtype against <paramref name="dtypes"/>, its number of
    /// dimensions against <paramref name="ranks"/> and that it holds exactly the bytes its shape needs.</summary>
    static (string Descr, long[] Shape, byte[] Data) ReadArray(ZipArchiveEntry entry, string path, string[] dtypes, int[] ranks)
    {
        string where = $"{path}: {entry.FullName}";
        using var stream = entry.Open();
        var start = ReadExactly(stream, 8, where, "the .npy magic and version");
        if (!start.AsSpan(0, 6).SequenceEqual(Magic))
            throw new KdException($"{where}: bad magic bytes {Convert.ToHexString(start, 0, 6)}, not a .npy array " +
                $"(expected {Convert.ToHexString(Magic)}, \"\\x93NUMPY\")");
        int major = start[6], minor = start[7];
        if (major is not (1 or 2 or 3)) throw new KdException($"{where}: unsupported .npy format version {major}.{minor}");
        var size = ReadExactly(stream, major == 1 ? 2 : 4, where, "the .npy header length");
        long headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(size) : BinaryPrimitives.ReadUInt32LittleEndian(size);
        if (headerLength > MaxHeaderLength)
            throw new KdException($"{where}: .npy header of {headerLength} bytes is longer than {MaxHeaderLength}, so it is corrupt");
        var headerBytes = ReadExactly(stream, (int)headerLength, where, "the .npy header");
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes).Trim();

        var descr = DescrField().Match(header);
        var fortran = FortranField().Match(header);
        var shapeField = ShapeField().Match(header);
        if (!descr.Success || !fortran.Success || !shapeField.Success)
            throw new KdException($"{where}: unreadable .npy header {header} (it needs 'descr', 'fortran_order' and 'shape')");
        if (fortran.Groups[1].Value == "True")
            throw new KdException($"{where}: stored in Fortran order; only C order is supported");
        string dtype = descr.Groups[1].Value;
        if (!dtypes.Contains(dtype))
            throw new KdException($"{where}: unsupported dtype '{dtype}' (expected {string.Join(" or ", dtypes.Select(d => $"'{d}'"))})");
        var dims = shapeField.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var shape = new long[dims.Length];
        for (int i = 0; i < dims.Length; i++)
            if (!long.TryParse(dims[i], out shape[i]) || shape[i] < 0)
                throw new KdException($"{where}: unreadable shape ({shapeField.Groups[1].Value}) in the .npy header");
        if (!ranks.Contains(shape.Length))
            throw new KdException($"{where}: shape {ShapeText(shape)} has {shape.Length} dimensions " +
                $"(expected {string.Join(" or ", ranks)})");

        // Every accepted dtype ends in its item size in bytes.
        long bytes = dtype[^1] - '0';
        foreach (long d in shape)
            if ((bytes *= d) > Array.MaxLength)
                throw new KdException($"{where}: shape {ShapeText(shape)} of '{dtype}' is larger than one array can hold");
        var data = ReadPayload(stream, (int)bytes, where, $"shape {ShapeText(shape)} of '{dtype}'");
        return (dtype, shape, data);
    }

    static byte[] ReadExactly(Stream stream, int length, string where, string what)
    {
        var buffer = new byte[length];
        int got = stream.ReadAtLeast(buffer, length, throwOnEndOfStream: false);
        if (got < length) throw new KdException($"{where}: truncated: {got} of the {length} bytes of {what}");
        return buffer;
    }

    /// <summary>Reads exactly <paramref name="expected"/> bytes and checks that the entry ends there; the buffer
    /// grows only as data arrives, so a header that lies about its shape cannot make it allocate for it.</summary>
    static byte[] ReadPayload(Stream stream, int expected, string where, string what)
    {
        var data = new byte[Math.Min(expected, 1 << 20)];
        int got = 0;
        while (got < expected)
        {
            if (got == data.Length) Array.Resize(ref data, (int)Math.Min(expected, 2L * data.Length));
            int n = stream.Read(data, got, data.Length - got);
            if (n == 0) throw new KdException($"{where}: truncated: holds {got} bytes of data but the {what} needs {expected}");
            got += n;
        }
        if (stream.ReadByte() != -1) throw new KdException($"{where}: more data than the {expected} bytes the {what} needs");
        return data;
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrField();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranField();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapeField();
}
