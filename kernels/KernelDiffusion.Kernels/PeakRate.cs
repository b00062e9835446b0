using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>How much work the peak-rate kernel does: Threads threads, each Iterations rounds of 8 FMAs.</summary>
public readonly record struct PeakShape(int Threads, int Group, int Iterations);

/// <summary>The card's fp32 FMA rate (and tf32 tensor-core rate), for the roofline floor of <c>kd bench</c>: every thread runs eight independent
/// FMA chains (enough to hide the FMA latency) with no memory traffic, then stores one value so nothing is dead code.</summary>
public static class PeakRate
{
    static void FmaKernel(ArrayView<float> sink, int iterations)
    {
        int i = Grid.GlobalIndex.X;
        float m = 0.999f + 1e-7f * (i & 1023), c = 1e-3f;
        float a0 = i, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7;
        for (int k = 0; k < iterations; k++)
        {
            a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
            a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
        }
        sink[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    }

    /// <summary>Enough threads to fill every multiprocessor several times over (one per core on the CPU accelerator).</summary>
    public static PeakShape Shape(Accelerator acc) => Launch.IsCpu(acc)
        ? new PeakShape(acc.NumMultiprocessors, 1, 1 << 20)
        : new PeakShape(acc.NumMultiprocessors * 2048, 256, 4096);

    public static void Run(Accelerator acc, ArrayView<float> sink, PeakShape s)
    {
        var k = KernelCache.Get(acc, "peak.fma", a => a.LoadStreamKernel<ArrayView<float>, int>(FmaKernel));
        k(new KernelConfig(s.Threads / s.Group, s.Group), sink, s.Iterations);
    }

    /// <summary>The tf32 tensor-core rate: every warp runs its WarpTile's eight independent m16n8k8 chains on fixed
    /// fragments (no memory traffic), then each lane stores the sum of its 32 accumulators. Lane l's operands are all
    /// <see cref="MmaOperand"/>(l). Needs TensorCore.Runs (128-thread groups of 32-lane warps).</summary>
    static void MmaKernel(ArrayView<float> sink, int iterations)
    {
        var scratch = TensorCore.Scratch();
        WarpTile.Declare();
        float v = MmaOperand(Warp.LaneIdx);
        var a = new FragA { A0 = v, A1 = v, A2 = v, A3 = v };
        var b = new FragB { B0 = v, B1 = v };
        var acc = WarpTile.Zero();
        for (int k = 0; k < iterations; k++) acc = WarpTile.Multiply(acc, a, a, b, b, b, b, scratch);
        float sum = 0;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                for (int e = 0; e < 4; e++) sum += acc.Get(i, j, e);
        sink[Grid.GlobalIndex.X] = sum;
    }

    /// <summary>Lane l's operand in the tf32 peak kernel: exactly representable in tf32.</summary>
    public static float MmaOperand(int lane) => (lane + 1) / 64f;

    /// <summary>Groups of 128 threads, eight per multiprocessor.</summary>
    public static PeakShape MmaShape(Accelerator acc) => new(acc.NumMultiprocessors * 8 * TensorCore.Threads, TensorCore.Threads, 4096);

    public static void RunMma(Accelerator acc, ArrayView<float> sink, PeakShape s)
    {
        if (!TensorCore.Runs(acc)) throw TensorCore.Refusal(acc, "the tf32 peak kernel");
        var k = KernelCache.Get(acc, "peak.mma_tf32", a => a.LoadStreamKernel<ArrayView<float>, int>(MmaKernel));
        k(new KernelConfig(s.Threads / s.Group, s.Group), sink, s.Iterations);
    }

    /// <summary>Per warp and iteration: 8 mma of 16 x 8 x 8 multiply-adds.</summary>
    public static double MmaFlops(PeakShape s) => 2.0 * 8 * 16 * 8 * 8 * s.Iterations * (s.Threads / 32.0);

    /// <summary>Two FLOPs per FMA.</summary>
    public static double Flops(PeakShape s) => 2.0 * 8 * s.Iterations * (double)s.Threads;

    /// <summary>What one thread's sink value is, in float64 (the fp32 chain differs by rounding only).</summary>
    public static double Reference(int i, int iterations)
    {
        double m = 0.999f + 1e-7f * (i & 1023), c = 1e-3f, sum = 0;
        for (int j = 0; j < 8; j++)
        {
            double a = i + j;
            for (int k = 0; k < iterations; k++) a = a * m + c;
            sum += a;
        }
        return sum;
    }
}
