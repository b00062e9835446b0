using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using KernelDiffusion.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Tests;

public sealed class OutputFormatTests : TempDirTest
{
    static readonly Rgb24 White = new(255, 255, 255), Black = new(0, 0, 0);
    static readonly byte[] NpyMagic = [0x93, .. "NUMPY"u8];

    [Theory]
    [InlineData(3, 5, 7, 1)]
    [InlineData(2, 4, 4, 3)]
    public void NpzRoundTripsImagesAndLabels(int n, int h, int w, int c)
    {
        var rng = new Random(n * 1000 + c);
        var pixels = new byte[n * h * w * c];
        rng.NextBytes(pixels);
        var labels = Enumerable.Range(0, n).Select(_ => rng.Next(-5, 1000)).ToArray();
        var path = PathOf("samples.npz");
        Npz.WriteImages(path, pixels, n, h, w, c, labels);
        var got = Npz.ReadImages(path);
        Assert.Equal((n, h, w, c), (got.Count, got.Height, got.Width, got.Channels));
        Assert.Equal(pixels, got.Pixels);
        Assert.Equal(labels.Select(l => (long)l), got.Labels!);

        Npz.WriteImages(path, pixels, n, h, w, c, labels: null);
        Assert.Null(Npz.ReadImages(path).Labels);
    }

    [Fact]
    public void NpzEntriesAreNpyVersion1WithAlignedHeaders()
    {
        var path = PathOf("samples.npz");
        Npz.WriteImages(path, new byte[3 * 5 * 7], 3, 5, 7, 1, [1, 2, 3]);
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal(["arr_0.npy", "arr_1.npy"], zip.Entries.Select(e => e.FullName));
        foreach (var (name, header, dataLength) in new[]
        {
            ("arr_0.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 5, 7, 1), }", 3 * 5 * 7),
            ("arr_1.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 3 * 8),
        })
        {
            var bytes = EntryBytes(zip.GetEntry(name)!);
            Assert.Equal([.. NpyMagic, 1, 0], bytes[..8]);
            int preamble = 10 + BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
            Assert.Equal(0, preamble % 64);
            Assert.Equal(preamble + dataLength, bytes.Length);
            var text = Encoding.Latin1.GetString(bytes, 10, preamble - 10);
            Assert.StartsWith(header, text);
            Assert.EndsWith("\n", text);
            Assert.Equal("", text[header.Length..^1].Trim(' '));
        }
    }

    [Fact]
    public void NpzReadsThreeDimensionalImagesAndInt32Labels()
    {
        var path = PathOf("gray.npz");
        WriteZip(path, ("arr_0.npy", Npy("|u1", "(2, 3, 4)", new byte[24])), ("arr_1.npy", Npy("<i4", "(2,)", [7, 0, 0, 0, 255, 255, 255, 255])));
        var got = Npz.ReadImages(path);
        Assert.Equal((2, 3, 4, 1), (got.Count, got.Height, got.Width, got.Channels));
        Assert.Equal([7L, -1L], got.Labels!);
    }

    [Fact]
    public void NpzRefusesBrokenFilesNamingTheFile()
    {
        var path = PathOf("samples.npz");
        Npz.WriteImages(path, new byte[2 * 4 * 4 * 3], 2, 4, 4, 3, [0, 1]);
        var bytes = File.ReadAllBytes(path);

        var cut = PathOf("cut.npz");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        Refused(cut, "zip", () => Npz.ReadImages(cut));

        var flipped = PathOf("flipped.npz");
        int magic = bytes.AsSpan().IndexOf(NpyMagic);
        bytes[magic + 1] = (byte)'X';
        File.WriteAllBytes(flipped, bytes);
        Refused(flipped, "", () => Npz.ReadImages(flipped));

        var notZip = PathOf("not.npz");
        File.WriteAllText(notZip, "hello");
        Refused(notZip, "not a zip", () => Npz.ReadImages(notZip));
        Refused(PathOf("missing.npz"), "not found", () => Npz.ReadImages(PathOf("missing.npz")));

        var image = Npy("|u1", "(1, 2, 2, 1)", [1, 2, 3, 4]);
        var cases = new (string Phrase, (string, byte[])[] Entries)[]
        {
            ("no arr_0.npy", [("arr_1.npy", image)]),
            ("arr_0.npy: bad magic", [("arr_0.npy", [0x93, .. "NUMPX"u8, .. image[6..]])]),
            ("arr_0.npy: truncated", [("arr_0.npy", image[..^1])]),
            ("arr_0.npy: truncated", [("arr_0.npy", image[..20])]),
            ("arr_0.npy: more data", [("arr_0.npy", [.. image, 0])]),
            ("arr_0.npy: unsupported dtype '<f4'", [("arr_0.npy", Npy("<f4", "(1, 1, 1, 1)", new byte[4]))]),
            ("arr_0.npy: stored in Fortran order", [("arr_0.npy", Npy("|u1", "(1, 2, 2, 1)", [1, 2, 3, 4], fortran: true))]),
            ("arr_0.npy: shape (4,) has 1 dimensions", [("arr_0.npy", Npy("|u1", "(4,)", [1, 2, 3, 4]))]),
            ("arr_1.npy: 2 labels for the 1 images", [("arr_0.npy", image), ("arr_1.npy", Npy("<i8", "(2,)", new byte[16]))]),
            ("arr_1.npy: unsupported dtype '|u1'", [("arr_0.npy", image), ("arr_1.npy", Npy("|u1", "(1,)", [0]))]),
        };
        foreach (var (i, (phrase, entries)) in cases.Index())
        {
            var crafted = PathOf($"crafted-{i}.npz");
            WriteZip(crafted, entries);
            Refused(crafted, phrase, () => Npz.ReadImages(crafted));
        }
    }

    [Fact]
    public void NpzRefusesToWriteMismatchedLengths()
    {
        var path = PathOf("bad.npz");
        Refused(path, "7 bytes are not 2 images of 2x2x1", () => Npz.WriteImages(path, new byte[7], 2, 2, 2, 1, null));
        Refused(path, "3 labels for 2 images", () => Npz.WriteImages(path, new byte[8], 2, 2, 2, 1, [1, 2, 3]));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void ToUint8TruncatesLikeGuidedDiffusionAndReordersToNhwc()
    {
        // One 3-channel 1x2 image: channel planes R = (0.999, -1), G = (1, 2), B = (NaN, 0).
        float[] nchw = [0.999f, -1f, 1f, 2f, float.NaN, 0f];
        var got = ImageGrid.ToUint8Nhwc(nchw, 1, 3, 1, 2);
        Assert.Equal(new byte[] { 254, 255, 0, 0, 255, 127 }, got);
        // Clamped below, then truncated: rounding would give 0, 2, 126, 128.
        Assert.Equal(new byte[] { 0, 1, 126, 127 }, ImageGrid.ToUint8Nhwc([-3f, -0.985f, -0.01f, 0.0001f], 4, 1, 1, 1));
    }

    [Fact]
    public void FontMeasuresFiveWidePlusOneSpacing()
    {
        Assert.Equal(0, BitmapFont.Measure(""));
        Assert.Equal(5, BitmapFont.Measure("A"));
        Assert.Equal(17, BitmapFont.Measure("abc"));
        Assert.Equal(34, BitmapFont.Measure("abc", 2));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void FontDrawsOnlyInsideItsBox(int scale)
    {
        const string text = "Ab9%?~";
        int x = 3, y = 4;
        using var image = new Image<Rgb24>(60 * scale, 12 * scale, White);
        BitmapFont.Draw(image, text, x, y, Black, scale);
        int width = BitmapFont.Measure(text, scale), inside = 0;
        for (int py = 0; py < image.Height; py++)
            for (int px = 0; px < image.Width; px++)
                if (image[px, py].Equals(Black))
                {
                    Assert.InRange(px, x, x + width - 1);
                    Assert.InRange(py, y, y + BitmapFont.GlyphHeight * scale - 1);
                    inside++;
                }
        Assert.True(inside > 0);
    }

    [Fact]
    public void FontFoldsCaseAndDrawsUnknownCharactersAsQuestionMarks()
    {
        Assert.Equal(Render("ABC?"), Render("abc~"));
        Assert.NotEqual(Render("A"), Render("B"));
        using var image = new Image<Rgb24>(4, 4, White);
        BitmapFont.Draw(image, "off the edge", -7, -3, Black, 2);
        BitmapFont.Draw(image, "far away", 1_000_000_000, int.MinValue, Black);
    }

    [Fact]
    public void LabelledGridHasTheLayoutSizeAndInkInTheMargin()
    {
        var pixels = Enumerable.Range(0, 5 * 3 * 6 * 7).Select(i => (float)Math.Sin(i)).ToArray();
        string[] labels = ["a", "bb", "ccc"];
        foreach (int scale in new[] { 1, 4 })
        {
            int gap = 2 * scale, font = Math.Max(1, scale / 2), pad = 2 * font;
            int left = BitmapFont.Measure("ccc", font) + 2 * pad, top = 7 * font + 2 * pad;
            var path = PathOf($"grid-{scale}.png");
            ImageGrid.Save(path, pixels, 5, 3, 6, 7, cols: 2, rowLabels: labels, title: "Title", scale: scale);
            using var image = Image.Load<Rgb24>(path);
            Assert.Equal(left + 2 * (7 * scale + gap) + gap, image.Width);
            Assert.Equal(top + 3 * (6 * scale + gap) + gap, image.Height);
            for (int r = 0; r < 3; r++)
            {
                int rowTop = top + gap + r * (6 * scale + gap);
                Assert.True(HasInk(image, 0, rowTop, left, 6 * scale), $"no label ink in row {r} at scale {scale}");
            }
            Assert.True(HasInk(image, 0, 0, image.Width, top), $"no title ink at scale {scale}");
        }
        var plain = PathOf("plain.png");
        ImageGrid.Save(plain, pixels, 5, 3, 6, 7, cols: 2, scale: 3);
        var info = Image.Identify(plain);
        Assert.Equal((2 * (21 + 6) + 6, 3 * (18 + 6) + 6), (info.Width, info.Height));
    }

    [Fact]
    public void GridRefusesBadScalesAndLabelCounts()
    {
        var path = PathOf("grid.png");
        var pixels = new float[4 * 2 * 2];
        Refused("grid", "2 row labels for 1 rows", () => ImageGrid.Save(path, pixels, 4, 1, 2, 2, 4, rowLabels: ["a", "b"]));
        Refused("grid", "scale 0", () => ImageGrid.Save(path, pixels, 4, 1, 2, 2, 4, scale: 0));
        Refused("grid", "scale 17", () => ImageGrid.Save(path, pixels, 4, 1, 2, 2, 4, scale: 17));
        Assert.False(File.Exists(path));
    }

    static bool HasInk(Image<Rgb24> image, int x, int y, int width, int height)
    {
        for (int py = y; py < y + height; py++)
            for (int px = x; px < x + width; px++)
                if (image[px, py].Equals(Black)) return true;
        return false;
    }

    static Rgb24[] Render(string text)
    {
        using var image = new Image<Rgb24>(BitmapFont.Measure(text), BitmapFont.GlyphHeight, White);
        BitmapFont.Draw(image, text, 0, 0, Black);
        var pixels = new Rgb24[image.Width * image.Height];
        image.CopyPixelDataTo(pixels);
        return pixels;
    }

    static byte[] EntryBytes(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>A .npy file's bytes, for crafting broken archives; the header is padded to 64 like NumPy's.</summary>
    static byte[] Npy(string descr, string shape, byte[] data, bool fortran = false)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shape}, }}";
        string header = dict.PadRight(64 - 10 - 1) + "\n";
        return [.. NpyMagic, 1, 0, (byte)header.Length, 0, .. Encoding.Latin1.GetBytes(header), .. data];
    }

    static void WriteZip(string path, params (string Name, byte[] Bytes)[] entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var stream = zip.CreateEntry(name).Open();
            stream.Write(bytes);
        }
    }
}
