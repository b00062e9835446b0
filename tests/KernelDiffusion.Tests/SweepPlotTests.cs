using KernelDiffusion.Data;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace KernelDiffusion.Tests;

public sealed class SweepPlotTests : TempDirTest
{
    static readonly double[] Scales = [0, 0.1, 0.3, 0.5, 1, 2, 4];

    static PlotPanel Panel(string title, string x, string y, Func<double, (double X, double Y)> curve) =>
        new(title, x, y, Scales.Select(w => (curve(w).X, curve(w).Y, $"w={w}")).ToList());

    [Fact]
    public void TwoPanelPlotHasTheLayoutSizeAndInkInEachPlotArea()
    {
        var path = PathOf("sweep.png");
        const string title = "Guidance sweep";
        SweepPlot.Save(path, title, [
            Panel("FID vs IS", "IS", "FID", w => (9 + 6 * Math.Sqrt(w), 8 + 10 * (w - 0.4) * (w - 0.4))),
            Panel("Precision vs recall", "Recall", "Precision", w => (0.6 - 0.1 * w, 0.6 + 0.08 * Math.Sqrt(w))),
        ]);
        var info = Image.Identify(path);
        Assert.Equal((2 * SweepPlot.PanelWidth, SweepPlot.TitleHeight + SweepPlot.PanelHeight), (info.Width, info.Height));

        using var image = Image.Load<Rgb24>(path);
        for (int p = 0; p < 2; p++)
        {
            int x0 = p * SweepPlot.PanelWidth + 64, y0 = SweepPlot.TitleHeight + 40;
            int x1 = (p + 1) * SweepPlot.PanelWidth - 16, y1 = SweepPlot.TitleHeight + SweepPlot.PanelHeight - 36;
            Assert.True(CountLineInk(image, x0 + 2, y0 + 2, x1 - 1, y1 - 1) > 100, $"no line or markers in panel {p}");
            Assert.True(HasDark(image, p * SweepPlot.PanelWidth, SweepPlot.TitleHeight, x0, y1), $"no y tick labels in panel {p}");
        }
        Assert.True(HasDark(image, 0, 0, image.Width, SweepPlot.TitleHeight), "no title");
    }

    [Fact]
    public void NonFiniteEmptyAndSinglePointPanelsStillSave()
    {
        var path = PathOf("odd.png");
        SweepPlot.Save(path, "", [
            new("NaN", "x", "y", [(double.NaN, 1, "a"), (1, double.PositiveInfinity, "b"), (2, 3, "c"), (3, 1e308 * 10, "d"), (4, 5, "e")]),
            new("Empty", "x", "y", []),
            new("Single", "x", "y", [(0.5, 0.5, "w=1")]),
            new("Flat", "x", "y", [(0, 0, "a"), (0, 0, "b")]),
        ]);
        var info = Image.Identify(path);
        Assert.Equal((4 * SweepPlot.PanelWidth, SweepPlot.PanelHeight), (info.Width, info.Height));
        using var image = Image.Load<Rgb24>(path);
        foreach (int p in new[] { 0, 2, 3 })
            Assert.True(CountLineInk(image, p * SweepPlot.PanelWidth + 66, 42, (p + 1) * SweepPlot.PanelWidth - 17,
                SweepPlot.PanelHeight - 37) > 0, $"no markers in panel {p}");
        Assert.True(HasDark(image, SweepPlot.PanelWidth, 0, 2 * SweepPlot.PanelWidth, SweepPlot.PanelHeight), "no axes in the empty panel");
    }

    [Fact]
    public void NoPanelsIsRefused()
    {
        var path = PathOf("none.png");
        Refused("plot", "no panels", () => SweepPlot.Save(path, "t", []));
        Assert.False(File.Exists(path));
    }

    /// <summary>Pixels in [x0, x1) x [y0, y1) that are bluish: the line and marker colours, not grey ink.</summary>
    static int CountLineInk(Image<Rgb24> image, int x0, int y0, int x1, int y1)
    {
        int n = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (image[x, y] is var c && c.B > c.R + 60) n++;
        return n;
    }

    static bool HasDark(Image<Rgb24> image, int x0, int y0, int x1, int y1)
    {
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (image[x, y].R < 100) return true;
        return false;
    }
}
