using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Concatenation and slicing along one axis of a contiguous tensor, seen as [outer, inner]: a part with
/// `inner` elements per outer index sits at `offset` inside the whole's `wholeInner` elements. Channel concat of
/// NCHW tensors is outer = N, inner = C*H*W; the attention pool's token concat over [N, C, T] is outer = N*C.</summary>
public static class Layout
{
    /// <summary>toWhole: whole[o, offset + i] = part[o, i]; else part[o, i] = whole[o, offset + i].</summary>
    static void CopyKernel(ArrayView<float> part, ArrayView<float> whole, int outer, int inner, int wholeInner, int offset, int toWhole)
    {
        int total = outer * inner, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            int o = i / inner, w = o * wholeInner + offset + i % inner;
            if (toWhole != 0) whole[w] = part[i];
            else part[i] = whole[w];
        }
    }

    public static void Copy(Accelerator acc, ArrayView<float> part, ArrayView<float> whole, int outer, int inner, int wholeInner, int offset, bool toWhole)
    {
        var k = KernelCache.Get(acc, "layout.copy",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int, int>(CopyKernel));
        k(Launch.GridStride(acc, (long)outer * inner), part, whole, outer, inner, wholeInner, offset, toWhole ? 1 : 0);
    }

    public static KernelCost CopyCost(long outer, long inner) => new(0, 8.0 * outer * inner);

    public static class Reference
    {
        public static double[] Concat(double[] a, double[] b, int outer, int innerA, int innerB)
        {
            var r = new double[outer * (innerA + innerB)];
            for (int o = 0; o < outer; o++)
            {
                Array.Copy(a, o * innerA, r, o * (innerA + innerB), innerA);
                Array.Copy(b, o * innerB, r, o * (innerA + innerB) + innerA, innerB);
            }
            return r;
        }

        public static double[] Slice(double[] whole, int outer, int inner, int wholeInner, int offset)
        {
            var r = new double[outer * inner];
            for (int o = 0; o < outer; o++) Array.Copy(whole, o * wholeInner + offset, r, o * inner, inner);
            return r;
        }
    }
}
