using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

public static partial class KernelChecks
{
    /// <summary>GEMM v10-v15 and conv v14 and v15 (software-pipelined) in 256-thread groups, their GPU launch shape,
    /// where each thread's share of a stage is the chunk it prefetches. The general cases run v10, v11, v14 and v15
    /// wherever kd runs; on the CPU accelerator as kd opens it (1-thread groups) most of a share is staged unpipelined,
    /// and GEMM v12-v15 run only in 256-thread groups. So these cases run on a CPU accelerator of 256-thread groups
    /// when the device's groups are smaller. Outputs are poisoned with NaN.</summary>
    static void AddPipelined(List<Case> list)
    {
        foreach (var version in new[] { GemmVersion.V10Pipelined, GemmVersion.V11Pipelined4, GemmVersion.V12Unrolled, GemmVersion.V13Unrolled4, GemmVersion.V14Padded, GemmVersion.V15Padded4 })
            // K past 4 stages of 16 (v13's depth, which loads two stages ahead) in the fifth; the last two with N a multiple
            // of 4 and Beta 0, where v14 and v15 store C 16 bytes at a time (Gemm.VectorC), past a tile's edge.
            foreach (var (m, n, k, ta, tb, beta) in new[] { (140, 135, 17, 0, 0, 0f), (19, 130, 9, 1, 1, 0f), (131, 20, 12, 0, 1, -1.5f), (70, 67, 33, 1, 0, 0f),
                         (66, 70, 71, 0, 1, 0f), (133, 68, 20, 0, 1, 0f), (67, 132, 40, 1, 0, 0f) })
            {
                var s = new GemmShape { Batch = 2, M = m, N = n, K = k, TransA = ta, TransB = tb, StrideA = m * k, StrideB = k * n, StrideC = m * n, Alpha = 0.5f, Beta = beta };
                list.Add(new Case($"gemm.v{(int)version}.groups256.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}",
                    $"[2,{m},{k}]x[2,{k},{n}]{(beta != 0 ? " beta" : "")}", (d, r) =>
                    {
                        var (a, b, c) = (Randn(r, 2 * m * k), Randn(r, 2 * k * n), Randn(r, 2 * m * n));
                        float[] got = OnGroupsOf256(d, acc =>
                        {
                            using var da = acc.Allocate1D(a.Select(v => (float)v).ToArray());
                            using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
                            using var dc = acc.Allocate1D(c.Select(v => beta == 0 ? float.NaN : (float)v).ToArray());
                            Gemm.Run(acc, da.View, db.View, dc.View, s, version);
                            return dc.GetAsArray1D();
                        }, out string where);
                        return (RelError(got, Gemm.Reference.Run(a, b, c, s)), Fwd, where.TrimStart(';', ' '));
                    }));
            }
        // Attention's two-level batches (2 samples x 2 heads, heads StrideX apart, samples OuterX with a gap), B transposed.
        foreach (var version in new[] { GemmVersion.V10Pipelined, GemmVersion.V11Pipelined4, GemmVersion.V12Unrolled, GemmVersion.V13Unrolled4, GemmVersion.V14Padded, GemmVersion.V15Padded4 })
        {
            var s = new GemmShape
            {
                Batch = 4, M = 70, N = 40, K = 20, TransB = 1, Alpha = 1, Split = 2,
                StrideA = 70 * 20, OuterA = 3 * 70 * 20, StrideB = 40 * 20, OuterB = 3 * 40 * 20, StrideC = 70 * 40, OuterC = 2 * 70 * 40,
            };
            list.Add(new Case($"gemm.v{(int)version}.groups256.two_level_batch", "[4,70,20]x[4,40,20] B^T 2x2 batches", (d, r) =>
            {
                var (a, b) = (Randn(r, 2 * s.OuterA), Randn(r, 2 * s.OuterB));
                float[] got = OnGroupsOf256(d, acc =>
                {
                    using var da = acc.Allocate1D(a.Select(v => (float)v).ToArray());
                    using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
                    using var dc = Poisoned(acc, 2 * s.OuterC);
                    Gemm.Run(acc, da.View, db.View, dc.View, s, version);
                    // The matrices of C, in batch order (the gaps between samples are not written).
                    var all = dc.GetAsArray1D();
                    return Enumerable.Range(0, s.Batch).SelectMany(bi => all.Skip(s.Base(bi, s.StrideC, s.OuterC)).Take(s.M * s.N)).ToArray();
                }, out string where);
                return (RelError(got, Gemm.Reference.Run(a, b, null, s)), Fwd, where.TrimStart(';', ' '));
            }));
        }
        // Conv: all three passes past one tile (Cout 130 and 70), stride 2, and the weight gradient in 3 slices.
        foreach (var version in new[] { ConvVersion.V14Pipelined, ConvVersion.V15Pipelined4 })
            foreach (var (g, slices) in new[] { (ConvGeometry.Create(2, 5, 9, 10, 130, 3, 1, 1), 1), (ConvGeometry.Create(1, 66, 7, 6, 3, 3, 2, 1), 1),
                         (ConvGeometry.Create(2, 20, 6, 5, 70, 3, 1, 1), 3) })
                list.Add(new Case($"conv2d.v{(int)version}.groups256",
                    $"x[{g.N},{g.Cin},{g.H},{g.W}] w[{g.Cout},{g.Cin},{g.R},{g.R}] s{g.S}{(slices > 1 ? $", {slices} slices" : "")}", (d, r) =>
                    {
                        int xn = g.N * g.Cin * g.H * g.W, wn = g.Cout * g.Cin * g.R * g.R, yn = g.N * g.Cout * g.Ho * g.Wo;
                        var (x, w, b, dy) = (Randn(r, xn), Randn(r, wn), Randn(r, g.Cout), Randn(r, yn));
                        float[] got = OnGroupsOf256(d, acc => ConvPasses(acc, g, version, slices, x, w, b, dy), out string where);
                        var (rdx, rdw) = Conv2d.Reference.Backward(x, w, dy, g);
                        double err = Math.Max(RelError(got[..yn], Conv2d.Reference.Forward(x, w, b, g)),
                            Math.Max(RelError(got[yn..(yn + xn)], rdx), RelError(got[(yn + xn)..], rdw)));
                        return (err, Fwd, $"max over y, dx, dw{where}");
                    }));
    }

    /// <summary>Forward (with bias), input gradient and weight gradient (in <paramref name="slices"/> slices of k) of one
    /// conv version on <paramref name="acc"/>, every output poisoned with NaN first: y, dx and dw end to end. With
    /// <paramref name="gemm"/> (the versions built on GEMMs) every pass runs its GEMMs through it and gets the scratch
    /// its version asks for (Winograd's transformed operands, v17's products), poisoned too.</summary>
    static float[] ConvPasses(Accelerator acc, ConvGeometry g, ConvVersion version, int slices, double[] x, double[] w, double[] b, double[] dy,
        GemmRunner? gemm = null)
    {
        int xn = x.Length, wn = w.Length, yn = dy.Length;
        using var dx = acc.Allocate1D(x.Select(v => (float)v).ToArray());
        using var dw = acc.Allocate1D(w.Select(v => (float)v).ToArray());
        using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
        using var ddy = acc.Allocate1D(dy.Select(v => (float)v).ToArray());
        using var y = Poisoned(acc, yn);
        using var gx = Poisoned(acc, xn);
        using var gw = Poisoned(acc, wn);
        long room = gemm == null ? slices * wn
            : new[] { ConvPass.Forward, ConvPass.InputGrad, ConvPass.WeightGrad }.Max(p => Conv2d.ScratchLength(acc, g, p, version));
        using var scratch = Poisoned(acc, (int)Math.Max(1, room));
        var everyPass = gemm == null ? default : scratch.View;
        Conv2d.Run(acc, ConvPass.Forward, g, dx.View, dw.View, dx.View, db.View, true, y.View, version, everyPass, gemm);
        Conv2d.Run(acc, ConvPass.InputGrad, g, dx.View, dw.View, ddy.View, dw.View, false, gx.View, version, everyPass, gemm);
        Conv2d.Run(acc, ConvPass.WeightGrad, g, dx.View, dw.View, ddy.View, dw.View, false, gw.View, version,
            gemm != null || slices > 1 ? scratch.View : default, gemm);
        return [.. y.GetAsArray1D(), .. gx.GetAsArray1D(), .. gw.GetAsArray1D()];
    }

    /// <summary>Runs f on the device's accelerator when its groups hold 256 threads, else on a CPU accelerator made so
    /// (4-lane warps, 64 a group).</summary>
    static float[] OnGroupsOf256(ComputeDevice d, Func<Accelerator, float[]> f, out string where)
        => OnShapedDevice(d, d.Accelerator.MaxNumThreadsPerGroup >= 256, 4, 64,
            $"; on a CPU device of 256-thread groups ({d.Info.Id} has groups of {d.Info.MaxGroupSize})", f, out where);

    /// <summary>Runs f on the device's accelerator when <paramref name="here"/>, else on the CPU device of that shape
    /// (ShapedDevice), saying so in <paramref name="where"/>.</summary>
    static float[] OnShapedDevice(ComputeDevice d, bool here, int warpSize, int warpsPerGroup, string elsewhere, Func<Accelerator, float[]> f,
        out string where)
    {
        if (here)
        {
            where = "";
            return f(d.Accelerator);
        }
        where = elsewhere;
        var acc = ShapedDevice(warpSize, warpsPerGroup).Accelerator;
        lock (acc) return f(acc);
    }

    /// <summary>The CPU device of <paramref name="warpSize"/>-lane warps, <paramref name="warpsPerGroup"/> a group, one
    /// multiprocessor, that the checks run GPU-shaped kernels on (directly or through the ops; lock its accelerator while
    /// using it): one per shape for the process, since each case on a fresh one compiled its kernels again (a tensor-core
    /// kernel took about 10 s on 2 cores). Never disposed: they live as long as the process, as kd's own device does.</summary>
    static ComputeDevice ShapedDevice(int warpSize, int warpsPerGroup)
        => ShapedDevices.GetOrAdd((warpSize, warpsPerGroup), key => new Lazy<ComputeDevice>(() => ComputeDevice.OpenShapedCpu(key.Item1, key.Item2))).Value;

    static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, int), Lazy<ComputeDevice>> ShapedDevices = new();
}
