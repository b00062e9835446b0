using System.Globalization;
using KernelDiffusion.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Data;

/// <summary>One chart of a sweep: its points joined by a line in the given order, each marked and labelled.</summary>
public sealed record PlotPanel(string Title, string XLabel, string YLabel, IReadOnlyList<(double X, double Y, string Label)> Points);

/// <summary>Line charts of sweeps (e.g. FID against IS over guidance scales) as one PNG, drawn pixel by pixel with
/// the built-in <see cref="BitmapFont"/>.</summary>
/// <remarks>Layout: the title (font scale 2) in a band of <see cref="TitleHeight"/> px when it is not empty, then
/// the panels side by side, each <see cref="PanelWidth"/> x <see cref="PanelHeight"/> px, so
/// width = max(panels * PanelWidth, title is empty ? 0 : BitmapFont.Measure(title, 2) + 16) and
/// height = (title is empty ? 0 : TitleHeight) + PanelHeight. In a panel at (ox, oy) the plot area's frame runs
/// from (ox + 64, oy + 40) to (ox + PanelWidth - 16, oy + PanelHeight - 36); the panel title is centred above it,
/// the y label above its top-left corner, the tick labels left of and below it and the x label below those.
/// Each axis spans its finite values padded by 5% (an empty or single-valued axis gets a range of its own),
/// widened to multiples of a 1, 2 or 5 x 10^k step that gives 4 to 6 ticks. Points that are not finite, or beyond
/// 1e300 in size, are left out.</remarks>
public static class SweepPlot
{
    public const int PanelWidth = 420, PanelHeight = 360, TitleHeight = 30;
    const int Left = 64, Right = 16, Top = 40, Bottom = 36, Glyph = BitmapFont.GlyphHeight;
    static readonly Rgb24 White = new(255, 255, 255), Ink = new(40, 40, 40), Grid = new(228, 228, 228),
        Line = new(31, 119, 180), Marker = new(20, 80, 140), Label = new(70, 70, 70), Note = new(150, 150, 150);

    public static void Save(string path, string title, IReadOnlyList<PlotPanel> panels)
    {
        if (panels.Count == 0) throw new KdException("plot: no panels to draw");
        int top = string.IsNullOrEmpty(title) ? 0 : TitleHeight;
        int width = Math.Max(panels.Count * PanelWidth, top == 0 ? 0 : BitmapFont.Measure(title, 2) + 16);
        using var image = new Image<Rgb24>(width, top + PanelHeight, White);
        if (top > 0) BitmapFont.Draw(image, title, 8, 8, Ink, 2);
        for (int i = 0; i < panels.Count; i++) DrawPanel(image, panels[i], i * PanelWidth, top);
        AtomicFile.Write(path, s => image.SaveAsPng(s));
    }

    static void DrawPanel(Image<Rgb24> image, PlotPanel panel, int ox, int oy)
    {
        static bool Drawable(double v) => double.IsFinite(v) && Math.Abs(v) <= 1e300;
        var points = panel.Points.Where(p => Drawable(p.X) && Drawable(p.Y)).ToList();
        var xAxis = Axis(points.Select(p => p.X).ToList());
        var yAxis = Axis(points.Select(p => p.Y).ToList());
        int x0 = ox + Left, x1 = ox + PanelWidth - Right, y0 = oy + Top, y1 = oy + PanelHeight - Bottom;
        int Px(double x) => x0 + (int)Math.Round((x - xAxis.Lo) / (xAxis.Hi - xAxis.Lo) * (x1 - x0));
        int Py(double y) => y1 - (int)Math.Round((y - yAxis.Lo) / (yAxis.Hi - yAxis.Lo) * (y1 - y0));

        foreach (var (value, text) in xAxis.Ticks)
        {
            int x = Px(value);
            Fill(image, x, y0, 1, y1 - y0, Grid);
            Fill(image, x, y1, 1, 5, Ink);
            int w = BitmapFont.Measure(text);
            BitmapFont.Draw(image, text, Math.Min(x - w / 2, ox + PanelWidth - 2 - w), y1 + 8, Ink);
        }
        foreach (var (value, text) in yAxis.Ticks)
        {
            int y = Py(value);
            Fill(image, x0, y, x1 - x0, 1, Grid);
            Fill(image, x0 - 4, y, 5, 1, Ink);
            BitmapFont.Draw(image, text, x0 - 7 - BitmapFont.Measure(text), y - Glyph / 2, Ink);
        }
        Fill(image, x0, y0, x1 - x0 + 1, 1, Ink);
        Fill(image, x0, y1, x1 - x0 + 1, 1, Ink);
        Fill(image, x0, y0, 1, y1 - y0 + 1, Ink);
        Fill(image, x1, y0, 1, y1 - y0 + 1, Ink);

        int titleScale = BitmapFont.Measure(panel.Title, 2) <= PanelWidth - 16 ? 2 : 1;
        BitmapFont.Draw(image, panel.Title, ox + (PanelWidth - BitmapFont.Measure(panel.Title, titleScale)) / 2,
            oy + 6 + (2 - titleScale) * Glyph / 2, Ink, titleScale);
        BitmapFont.Draw(image, panel.YLabel, ox + 8, y0 - 14, Ink);
        BitmapFont.Draw(image, panel.XLabel, (x0 + x1 - BitmapFont.Measure(panel.XLabel)) / 2, y1 + 22, Ink);
        if (points.Count == 0)
            BitmapFont.Draw(image, "no data", (x0 + x1 - BitmapFont.Measure("no data", 2)) / 2, (y0 + y1) / 2 - Glyph, Note, 2);

        var pixels = points.Select(p => (X: Px(p.X), Y: Py(p.Y))).ToList();
        for (int i = 1; i < pixels.Count; i++) DrawLine(image, pixels[i - 1], pixels[i], Line);
        foreach (var (x, y) in pixels)
            for (int dy = -3; dy <= 3; dy++)
                for (int dx = -3; dx <= 3; dx++)
                    if (dx * dx + dy * dy <= 10) Set(image, x + dx, y + dy, Marker);
        for (int i = 0; i < points.Count; i++)
            PlaceLabel(image, points[i].Label, pixels[i].X, pixels[i].Y, (x0 + 2, y0 + 2, x1 - 2, y1 - 2));
    }

    /// <summary>Draws a point's label at the first spot around its marker (right, left, above, below, then the
    /// diagonals) that stays inside the plot area without covering anything drawn; failing that, at the spot that
    /// covers the fewest drawn pixels.</summary>
    static void PlaceLabel(Image<Rgb24> image, string text, int cx, int cy, (int X0, int Y0, int X1, int Y1) area)
    {
        if (text.Length == 0) return;
        int w = BitmapFont.Measure(text);
        (int X, int Y)[] spots = [(cx + 7, cy - 3), (cx - 7 - w, cy - 3), (cx - w / 2, cy - 13), (cx - w / 2, cy + 7),
            (cx + 5, cy - 12), (cx + 5, cy + 5), (cx - 5 - w, cy - 12), (cx - 5 - w, cy + 5)];
        (int X, int Y) best = (Math.Max(area.X0, Math.Min(cx + 7, area.X1 - w)), Math.Clamp(cy - 3, area.Y0, area.Y1 - Glyph));
        int bestInk = int.MaxValue;
        foreach (var (x, y) in spots)
        {
            if (x < area.X0 || y < area.Y0 || x + w > area.X1 || y + Glyph > area.Y1) continue;
            int ink = 0;
            for (int py = y - 1; py <= y + Glyph; py++)
                for (int px = x - 1; px <= x + w; px++)
                    if (image[px, py] is var c && !c.Equals(White) && !c.Equals(Grid)) ink++;
            if (ink < bestInk) (best, bestInk) = ((x, y), ink);
            if (ink == 0) break;
        }
        BitmapFont.Draw(image, text, best.X, best.Y, Label);
    }

    /// <summary>An axis over <paramref name="values"/>: its ends and its ticks with their labels.</summary>
    static (double Lo, double Hi, List<(double Value, string Text)> Ticks) Axis(List<double> values)
    {
        double lo = 0, hi = 1;
        if (values.Count > 0)
        {
            (lo, hi) = (values.Min(), values.Max());
            double size = Math.Max(Math.Abs(lo), Math.Abs(hi));
            double pad = size == 0 ? 1 : hi - lo <= 1e-9 * size ? size * 0.1 : (hi - lo) * 0.05;
            (lo, hi) = (lo - pad, hi + pad);
        }

        // The smallest 1, 2 or 5 x 10^k step that needs at most 5 intervals; it needs at least 2, so widen to 3.
        double unit = Math.Pow(10, Math.Floor(Math.Log10((hi - lo) / 5)));
        double step = unit;
        long first = 0, last = 0;
        foreach (double m in new[] { 1, 2, 5, 10, 20, 50 })
        {
            step = unit * m;
            (first, last) = ((long)Math.Floor(lo / step), (long)Math.Ceiling(hi / step));
            if (last - first <= 5) break;
        }
        while (last - first < 3)
            if (lo - first * step < last * step - hi) first--; else last++;

        // Fixed-point with the step's decimals, or for very small steps or large values as many significant digits
        // as tell the ticks apart.
        int magnitude = (int)Math.Floor(Math.Log10(step) + 1e-9), decimals = Math.Max(0, -magnitude);
        double largest = Math.Max(Math.Abs(first), Math.Abs(last)) * step;
        string format = decimals <= 6 && largest < 1e7 ? "F" + decimals
            : "G" + Math.Max(1, (int)Math.Floor(Math.Log10(largest) + 1e-9) - magnitude + 1);
        var ticks = new List<(double, string)>();
        for (long k = first; k <= last; k++) ticks.Add((k * step + 0.0, (k * step + 0.0).ToString(format, CultureInfo.InvariantCulture)));
        return (first * step, last * step, ticks);
    }

    /// <summary>Bresenham's line, 2 px wide: each step fills a 2x2 block.</summary>
    static void DrawLine(Image<Rgb24> image, (int X, int Y) a, (int X, int Y) b, Rgb24 color)
    {
        int dx = Math.Abs(b.X - a.X), dy = -Math.Abs(b.Y - a.Y), sx = a.X < b.X ? 1 : -1, sy = a.Y < b.Y ? 1 : -1;
        int err = dx + dy, x = a.X, y = a.Y;
        while (true)
        {
            Fill(image, x, y, 2, 2, color);
            if (x == b.X && y == b.Y) return;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x += sx; }
            if (e2 <= dx) { err += dx; y += sy; }
        }
    }

    static void Fill(Image<Rgb24> image, int x, int y, int width, int height, Rgb24 color)
    {
        for (int py = y; py < y + height; py++)
            for (int px = x; px < x + width; px++) Set(image, px, py, color);
    }

    static void Set(Image<Rgb24> image, int x, int y, Rgb24 color)
    {
        if ((uint)x < (uint)image.Width && (uint)y < (uint)image.Height) image[x, y] = color;
    }
}
