using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Data;

/// <summary>Images in [-1, 1] (NCHW, 1 or 3 channels) tiled into one PNG, `cols` per row, with a 2-pixel gap.</summary>
public static class ImageGrid
{
    public static void Save(string path, float[] pixels, int count, int channels, int height, int width, int cols)
    {
        if (channels is not (1 or 3)) throw new KdException($"grid: {channels} channels (1 or 3 can be drawn)");
        if (pixels.Length != count * channels * height * width) throw new KdException($"grid: {pixels.Length} values are not {count} images of {channels}x{height}x{width}");
        const int gap = 2;
        int rows = (count + cols - 1) / cols;
        using var image = new Image<Rgb24>(cols * (width + gap) + gap, rows * (height + gap) + gap, new Rgb24(255, 255, 255));
        static byte Byte(float v) => (byte)Math.Clamp((int)Math.Round((v + 1) * 127.5f), 0, 255);
        for (int i = 0; i < count; i++)
        {
            int ox = gap + i % cols * (width + gap), oy = gap + i / cols * (height + gap), o = i * channels * height * width;
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    int p = o + y * width + x;
                    byte r = Byte(pixels[p]);
                    image[ox + x, oy + y] = channels == 1 ? new Rgb24(r, r, r)
                        : new Rgb24(r, Byte(pixels[p + height * width]), Byte(pixels[p + 2 * height * width]));
                }
        }
        AtomicFile.Write(path, s => image.SaveAsPng(s));
    }
}
