using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

public static partial class KernelChecks
{
    /// <summary>GEMM v5 (tf32 tensor cores) at the kernel level: every transpose pair at a ragged shape inside one
    /// 64 x 64 tile, a shared operand with alpha and beta, and ragged shapes past one tile in both directions.
    /// <para>The reference is float64 on the inputs rounded to tf32 (what the tensor cores multiply), so the tolerance
    /// stays the forward one; the note gives the error against the unrounded inputs too (tf32's own, about 1e-4).</para>
    /// <para>Where the device cannot run v5's 128-thread groups of 32-lane warps (the CPU accelerator as kd opens it),
    /// the case runs on a CPU accelerator built with 32-lane warps, where <see cref="TensorCore.Mma"/> is emulated with
    /// shared memory, and says so.</para></summary>
    static void AddTensorCore(List<Case> list)
    {
        foreach (var (ta, tb) in new[] { (0, 0), (0, 1), (1, 0), (1, 1) })
            list.Add(Tf32GemmCase($"gemm.v5.{(ta == 1 ? "t" : "n")}{(tb == 1 ? "t" : "n")}",
                new GemmShape { Batch = 2, M = 17, N = 19, K = 23, TransA = ta, TransB = tb, StrideA = 17 * 23, StrideB = 23 * 19, StrideC = 17 * 19, Alpha = 1 }));
        list.Add(Tf32GemmCase("gemm.v5.alpha_beta_shared_b",
            new GemmShape { Batch = 3, M = 9, N = 11, K = 13, StrideA = 9 * 13, StrideB = 0, StrideC = 9 * 11, Alpha = -0.7f, Beta = 1.3f }));
        list.Add(Tf32GemmCase("gemm.v5.multi_tile", new GemmShape { Batch = 1, M = 70, N = 67, K = 33, Alpha = 1 }));
        list.Add(Tf32GemmCase("gemm.v5.multi_tile.tt",
            new GemmShape { Batch = 2, M = 19, N = 130, K = 41, TransA = 1, TransB = 1, StrideA = 19 * 41, StrideB = 41 * 130, StrideC = 19 * 130, Alpha = 0.5f, Beta = -1.5f }));
    }

    static Case Tf32GemmCase(string kernel, GemmShape s) => new(kernel,
        $"[{s.Batch},{s.M},{s.K}]x[{(s.StrideB == 0 ? 1 : s.Batch)},{s.K},{s.N}]{(s.TransA == 1 ? " A^T" : "")}{(s.TransB == 1 ? " B^T" : "")}",
        (d, r) =>
        {
            var a = Randn(r, (s.StrideA == 0 ? 1 : s.Batch) * s.M * s.K);
            var b = Randn(r, (s.StrideB == 0 ? 1 : s.Batch) * s.K * s.N);
            var c = Randn(r, s.Batch * s.M * s.N);
            float[] got = OnTensorCoreTiles(d, acc =>
            {
                using var da = acc.Allocate1D(a.Select(v => (float)v).ToArray());
                using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
                // Beta = 0 must not read C: poison it then.
                using var dc = acc.Allocate1D(c.Select(v => s.Beta == 0 ? float.NaN : (float)v).ToArray());
                Gemm.Run(acc, da.View, db.View, dc.View, s, GemmVersion.V5Tf32);
                return dc.GetAsArray1D();
            }, out string where);
            static double[] Tf32(double[] x) => x.Select(v => (double)TensorCore.RoundTf32((float)v)).ToArray();
            double err = RelError(got, Gemm.Reference.Run(Tf32(a), Tf32(b), c, s));
            double raw = RelError(got, Gemm.Reference.Run(a, b, c, s));
            return (err, Fwd, $"against tf32-rounded inputs; {raw:E1} against the fp32 inputs{where}");
        });

    /// <summary>Runs f on the device's accelerator when it can run 128-thread groups of 32-lane warps, else on a CPU
    /// accelerator made so (created for the call: kd's own CPU device keeps 2-thread groups for speed).</summary>
    static float[] OnTensorCoreTiles(ComputeDevice d, Func<Accelerator, float[]> f, out string where)
    {
        if (Gemm.RunsTensorCoreTiles(d.Accelerator))
        {
            where = "";
            return f(d.Accelerator);
        }
        using var context = Context.Create(b => b.CPU(new CPUDevice(32, 4, 1)).EnableAlgorithms());
        using var acc = context.CreateCPUAccelerator(0);
        where = $"; emulated through shared memory on a CPU device of 32-lane warps ({d.Info.Id} has {d.Info.WarpSize}-lane warps)";
        return f(acc);
    }
}
