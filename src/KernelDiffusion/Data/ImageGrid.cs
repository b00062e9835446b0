using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Data;

/// <summary>Images in [-1, 1] (NCHW, 1 or 3 channels) tiled into one PNG, `cols` per row, optionally upscaled,
/// with a label left of each row and a title above the grid.</summary>
/// <remarks>Layout, with s = scale, g = 2s (the gap around tiles), f = max(1, s / 2) (the font scale) and p = 2f
/// (the padding around text):
/// label margin L = rowLabels is null ? 0 : max BitmapFont.Measure(label, f) + 2p;
/// title band T = no title ? 0 : 7f + 2p;
/// width = max(L + cols * (width * s + g) + g, no title ? 0 : BitmapFont.Measure(title, f) + 2p);
/// height = T + rows * (height * s + g) + g.
/// Tile (r, c) has its top-left at (L + g + c * (width * s + g), T + g + r * (height * s + g)); row r's label
/// is drawn at x = p, centred on the row; the title at (p, p).</remarks>
public static class ImageGrid
{
    public const int MaxScale = 16;

    public static void Save(string path, float[] pixels, int count, int channels, int height, int width, int cols,
        IReadOnlyList<string>? rowLabels = null, string? title = null, int scale = 1)
    {
        if (channels is not (1 or 3)) throw new KdException($"grid: {channels} channels (1 or 3 can be drawn)");
        if (cols < 1) throw new KdException($"grid: {cols} columns (at least 1 is needed)");
        if (scale is < 1 or > MaxScale) throw new KdException($"grid: scale {scale} is outside 1 to {MaxScale}");
        var bytes = ToUint8Nhwc(pixels, count, channels, height, width);
        int rows = (count + cols - 1) / cols;
        if (rowLabels is not null && rowLabels.Count != rows)
            throw new KdException($"grid: {rowLabels.Count} row labels for {rows} rows");

        int gap = 2 * scale, tileWidth = width * scale, tileHeight = height * scale;
        int font = Math.Max(1, scale / 2), pad = 2 * font;
        bool hasTitle = !string.IsNullOrEmpty(title);
        int left = rowLabels is null ? 0 : rowLabels.Select(l => BitmapFont.Measure(l, font)).DefaultIfEmpty(0).Max() + 2 * pad;
        int top = hasTitle ? BitmapFont.GlyphHeight * font + 2 * pad : 0;
        int imageWidth = Math.Max(left + cols * (tileWidth + gap) + gap, hasTitle ? BitmapFont.Measure(title!, font) + 2 * pad : 0);
        int imageHeight = top + rows * (tileHeight + gap) + gap;

        using var image = new Image<Rgb24>(imageWidth, imageHeight, new Rgb24(255, 255, 255));
        image.ProcessPixelRows(access =>
        {
            for (int i = 0; i < count; i++)
            {
                int ox = left + gap + i % cols * (tileWidth + gap), oy = top + gap + i / cols * (tileHeight + gap);
                for (int y = 0; y < tileHeight; y++)
                {
                    var row = access.GetRowSpan(oy + y);
                    for (int x = 0; x < width; x++)
                    {
                        int p = ((i * height + y / scale) * width + x) * channels;
                        var color = channels == 1 ? new Rgb24(bytes[p], bytes[p], bytes[p]) : new Rgb24(bytes[p], bytes[p + 1], bytes[p + 2]);
                        row.Slice(ox + x * scale, scale).Fill(color);
                    }
                }
            }
        });
        var black = new Rgb24(0, 0, 0);
        for (int r = 0; r < (rowLabels?.Count ?? 0); r++)
            BitmapFont.Draw(image, rowLabels![r], pad,
                top + gap + r * (tileHeight + gap) + (tileHeight - BitmapFont.GlyphHeight * font) / 2, black, font);
        if (hasTitle) BitmapFont.Draw(image, title!, pad, pad, black, font);
        AtomicFile.Write(path, s => image.SaveAsPng(s));
    }

    /// <summary>NCHW floats in [-1, 1] to NHWC bytes the way openai/guided-diffusion's sampling script does it,
    /// ((x + 1) * 127.5).clamp(0, 255).to(uint8): in float32 and truncated, not rounded, so saved samples match
    /// its .npz files byte for byte. NaN becomes 0.</summary>
    public static byte[] ToUint8Nhwc(float[] pixels, int count, int channels, int height, int width)
    {
        if (count < 0 || channels < 1 || height < 1 || width < 1)
            throw new KdException($"images: invalid shape {count}x{channels}x{height}x{width}");
        if (pixels.Length != (long)count * channels * height * width)
            throw new KdException($"images: {pixels.Length} values are not {count} images of {channels}x{height}x{width}");
        var bytes = new byte[pixels.Length];
        int plane = height * width;
        for (int i = 0; i < count; i++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < plane; p++)
                {
                    float v = (pixels[(i * channels + c) * plane + p] + 1f) * 127.5f;
                    bytes[(i * plane + p) * channels + c] = float.IsNaN(v) ? (byte)0 : (byte)Math.Clamp(v, 0f, 255f);
                }
        return bytes;
    }
}
