using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Nearest 2x upsampling and 2x2 average pooling (stride 2, floor of odd sizes, as PyTorch's
/// F.interpolate(scale_factor=2) and F.avg_pool2d(2)) over planes [NC, H, W], with their backward. Every kernel
/// computes one output element (gathers, never scatters), so no atomics are needed.</summary>
public static class Resample
{
    /// <summary>up: y[p, oh, ow] = scale * x[p, oh/2, ow/2] for x [P, H, W] and y [P, Hy, Wy]; rows and columns of y
    /// past 2H or 2W (the odd edge of an average pool's input, in its backward) get 0. Upsampling is Hy = 2H; its
    /// backward is the 2x2 sum (the pool with scale 1); the pool's backward is this with scale 1/4.</summary>
    static void UpKernel(ArrayView<float> x, ArrayView<float> y, int planes, int h, int w, int hy, int wy, float scale)
    {
        int total = planes * hy * wy, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            int ow = i % wy, t = i / wy, oh = t % hy, p = t / hy;
            y[i] = oh / 2 < h && ow / 2 < w ? scale * x[(p * h + oh / 2) * w + ow / 2] : 0f;
        }
    }

    /// <summary>y[p, oh, ow] = scale * sum of x over the 2x2 window (x is [P, H, W], y [P, H/2, W/2]).</summary>
    static void PoolKernel(ArrayView<float> x, ArrayView<float> y, int planes, int h, int w, float scale)
    {
        int ho = h / 2, wo = w / 2, total = planes * ho * wo, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            int ow = i % wo, t = i / wo, oh = t % ho, p = t / ho;
            int o = (p * h + 2 * oh) * w + 2 * ow;
            y[i] = scale * (x[o] + x[o + 1] + x[o + w] + x[o + w + 1]);
        }
    }

    /// <summary>Upsample forward (scale 1, y [P, 2h, 2w]) or average-pool backward (scale 1/4; x = dy of the pool,
    /// [P, h, w], y = dx [P, hy, wy] with hy = 2h or 2h + 1).</summary>
    public static void Up(Accelerator acc, ArrayView<float> x, ArrayView<float> y, int planes, int h, int w, int hy, int wy, float scale)
    {
        var k = KernelCache.Get(acc, "resample.up",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int, int, float>(UpKernel));
        k(Launch.GridStride(acc, (long)planes * hy * wy), x, y, planes, h, w, hy, wy, scale);
    }

    /// <summary>Average-pool forward (scale 1/4) or upsample backward (scale 1; x = dy of the upsample, [P, 2h, 2w]).</summary>
    public static void Pool(Accelerator acc, ArrayView<float> x, ArrayView<float> y, int planes, int h, int w, float scale)
    {
        var k = KernelCache.Get(acc, "resample.pool", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, float>(PoolKernel));
        k(Launch.GridStride(acc, (long)planes * (h / 2) * (w / 2)), x, y, planes, h, w, scale);
    }

    public static KernelCost UpCost(long planes, long h, long w) => new(4.0 * planes * h * w, 4.0 * 5 * planes * h * w);
    public static KernelCost PoolCost(long planes, long h, long w) => new(planes * h * w, 4.0 * 1.25 * planes * h * w);

    public static class Reference
    {
        public static double[] Up(double[] x, int planes, int h, int w)
        {
            var y = new double[planes * 4 * h * w];
            for (int p = 0; p < planes; p++)
            for (int oh = 0; oh < 2 * h; oh++)
            for (int ow = 0; ow < 2 * w; ow++)
                y[(p * 2 * h + oh) * 2 * w + ow] = x[(p * h + oh / 2) * w + ow / 2];
            return y;
        }

        public static double[] Pool(double[] x, int planes, int h, int w)
        {
            int ho = h / 2, wo = w / 2;
            var y = new double[planes * ho * wo];
            for (int p = 0; p < planes; p++)
            for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++)
            {
                int o = (p * h + 2 * oh) * w + 2 * ow;
                y[(p * ho + oh) * wo + ow] = (x[o] + x[o + 1] + x[o + w] + x[o + w + 1]) / 4;
            }
            return y;
        }
    }
}
