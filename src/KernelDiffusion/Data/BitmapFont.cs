using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Data;

/// <summary>A built-in 5x7 pixel font for labelling output images without font files or a text-rendering
/// package. Glyphs are 5 pixels wide with 1 pixel between them; lowercase letters draw as uppercase and any
/// character without a glyph draws as '?'.</summary>
public static class BitmapFont
{
    public const int GlyphWidth = 5, GlyphHeight = 7;

    /// <summary>Each glyph as its 7 rows, top first, '#' for ink.</summary>
    static readonly (char Char, string Rows)[] Table =
    [
        (' ', "..... ..... ..... ..... ..... ..... ....."),
        ('A', ".###. #...# #...# #...# ##### #...# #...#"),
        ('B', "####. #...# #...# ####. #...# #...# ####."),
        ('C', ".###. #...# #.... #.... #.... #...# .###."),
        ('D', "###.. #..#. #...# #...# #...# #..#. ###.."),
        ('E', "##### #.... #.... ####. #.... #.... #####"),
        ('F', "##### #.... #.... ####. #.... #.... #...."),
        ('G', ".###. #...# #.... #.### #...# #...# .####"),
        ('H', "#...# #...# #...# ##### #...# #...# #...#"),
        ('I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."),
        ('J', "..### ...#. ...#. ...#. ...#. #..#. .##.."),
        ('K', "#...# #..#. #.#.. ##... #.#.. #..#. #...#"),
        ('L', "#.... #.... #.... #.... #.... #.... #####"),
        ('M', "#...# ##.## #.#.# #.#.# #...# #...# #...#"),
        ('N', "#...# #...# ##..# #.#.# #..## #...# #...#"),
        ('O', ".###. #...# #...# #...# #...# #...# .###."),
        ('P', "####. #...# #...# ####. #.... #.... #...."),
        ('Q', ".###. #...# #...# #...# #.#.# #..#. .##.#"),
        ('R', "####. #...# #...# ####. #.#.. #..#. #...#"),
        ('S', ".#### #.... #.... .###. ....# ....# ####."),
        ('T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
        ('U', "#...# #...# #...# #...# #...# #...# .###."),
        ('V', "#...# #...# #...# #...# #...# .#.#. ..#.."),
        ('W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."),
        ('X', "#...# #...# .#.#. ..#.. .#.#. #...# #...#"),
        ('Y', "#...# #...# #...# .#.#. ..#.. ..#.. ..#.."),
        ('Z', "##### ....# ...#. ..#.. .#... #.... #####"),
        ('0', ".###. #...# #..## #.#.# ##..# #...# .###."),
        ('1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."),
        ('2', ".###. #...# ....# ...#. ..#.. .#... #####"),
        ('3', "##### ...#. ..#.. ...#. ....# #...# .###."),
        ('4', "...#. ..##. .#.#. #..#. ##### ...#. ...#."),
        ('5', "##### #.... ####. ....# ....# #...# .###."),
        ('6', "..##. .#... #.... ####. #...# #...# .###."),
        ('7', "##### ....# ...#. ..#.. .#... .#... .#..."),
        ('8', ".###. #...# #...# .###. #...# #...# .###."),
        ('9', ".###. #...# #...# .#### ....# ...#. .##.."),
        ('-', "..... ..... ..... ##### ..... ..... ....."),
        ('/', "..... ....# ...#. ..#.. .#... #.... ....."),
        ('.', "..... ..... ..... ..... ..... .##.. .##.."),
        (',', "..... ..... ..... ..... .##.. ..#.. .#..."),
        (':', "..... .##.. .##.. ..... .##.. .##.. ....."),
        ('=', "..... ..... ##### ..... ##### ..... ....."),
        ('+', "..... ..#.. ..#.. ##### ..#.. ..#.. ....."),
        ('(', "...#. ..#.. .#... .#... .#... ..#.. ...#."),
        (')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."),
        ('%', "##... ##..# ...#. ..#.. .#... #..## ...##"),
        ('_', "..... ..... ..... ..... ..... ..... #####"),
        ('\'', "..#.. ..#.. .#... ..... ..... ..... ....."),
        ('!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."),
        ('?', ".###. #...# ....# ...#. ..#.. ..... ..#.."),
        ('#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."),
        ('<', "...#. ..#.. .#... #.... .#... ..#.. ...#."),
        ('>', ".#... ..#.. ...#. ....# ...#. ..#.. .#..."),
    ];

    /// <summary>Each glyph as 7 row masks, bit 4 the leftmost column.</summary>
    static readonly Dictionary<char, byte[]> Glyphs = Table.ToDictionary(g => g.Char, g => g.Rows.Split(' ')
        .Select(row => (byte)row.Aggregate(0, (bits, c) => bits << 1 | (c == '#' ? 1 : 0))).ToArray());

    /// <summary>The width in pixels of <paramref name="text"/>: 5 * scale per glyph and scale between glyphs.</summary>
    public static int Measure(string text, int scale = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        return text.Length == 0 ? 0 : (text.Length * (GlyphWidth + 1) - 1) * scale;
    }

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (x, y), each font pixel a scale x scale
    /// block; whatever falls outside the image is left out.</summary>
    public static void Draw(Image<Rgb24> image, string text, int x, int y, Rgb24 color, int scale = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        for (int i = 0; i < text.Length; i++)
        {
            if (!Glyphs.TryGetValue(char.ToUpperInvariant(text[i]), out var glyph)) glyph = Glyphs['?'];
            long left = x + (long)i * (GlyphWidth + 1) * scale;
            for (int row = 0; row < GlyphHeight; row++)
                for (int col = 0; col < GlyphWidth; col++)
                    if ((glyph[row] >> (GlyphWidth - 1 - col) & 1) != 0)
                        Fill(image, left + (long)col * scale, y + (long)row * scale, scale, color);
        }
    }

    /// <summary>Fills the scale x scale block at (x, y), clipped to the image; long so that text far off the
    /// image cannot overflow into it.</summary>
    static void Fill(Image<Rgb24> image, long x, long y, int scale, Rgb24 color)
    {
        long x0 = Math.Max(x, 0), x1 = Math.Min(x + scale, image.Width);
        long y0 = Math.Max(y, 0), y1 = Math.Min(y + scale, image.Height);
        for (long py = y0; py < y1; py++)
            for (long px = x0; px < x1; px++)
                image[(int)px, (int)py] = color;
    }
}
