using BenchmarkDotNet.Attributes;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Bench;

static class Devices
{
    public static readonly bool OnCpu = ComputeDevice.Describe().Chosen?.StartsWith("cpu") ?? true;
}

/// <summary>Elementwise, reduction, random and optimiser kernels over Size floats.</summary>
public class StreamingKernels
{
    ComputeDevice d = null!;
    Tensor a = null!, b = null!, o = null!, m = null!, v = null!, bias = null!, sum = null!;

    [ParamsSource(nameof(Sizes))]
    public int Size;

    public static IEnumerable<int> Sizes => Devices.OnCpu ? [1 << 16, 1 << 20] : [1 << 20, 1 << 26];

    [GlobalSetup]
    public void Setup()
    {
        d = ComputeDevice.Open();
        Tensor R(int[] s, ulong seed)
        {
            var t = d.Empty(s);
            Philox.Draw(d.Accelerator, t.View, t.Length, seed, 0, normal: true);
            return t;
        }
        a = R([Size / 64, 64], 1); b = R([Size / 64, 64], 2); o = R([Size / 64, 64], 3);
        m = R([Size], 4); v = d.Zeros([Size]); bias = R([64], 5); sum = d.Empty([64]);
        d.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => d.Dispose();

    [Benchmark] public void Silu() { Elementwise.Unary(d.Accelerator, UnaryOp.Silu, a.View, o.View, 0, 0, Size); d.Synchronize(); }

    [Benchmark] public void AddBroadcast()
    {
        Elementwise.Binary(d.Accelerator, BinaryOp.Add, a.View, bias.View, o.View, Broadcast4.Create(a.Shape, bias.Shape, a.Shape), Size);
        d.Synchronize();
    }

    [Benchmark] public void SumOverRows()
    {
        var p = ReducePlan.Create(a.Shape, [1, 64]);
        Reduce.Sum(d.Accelerator, a.View, sum.View, p, 64, 1f);
        d.Synchronize();
    }

    [Benchmark] public void PhiloxNormal() { Philox.Draw(d.Accelerator, o.View, Size, 7, 0, normal: true); d.Synchronize(); }

    [Benchmark] public void AdamW()
    {
        Adam.AdamW(d.Accelerator, a.View, b.View, m.View, v.View, AdamStep.Create(1e-4, 0.9, 0.999, 1e-8, 0.0, 10), Size);
        d.Synchronize();
    }

    public static KernelCost Cost(string method, int size) => method switch
    {
        nameof(Silu) => Elementwise.UnaryCost(UnaryOp.Silu, size),
        nameof(AddBroadcast) => Elementwise.BinaryCost(size, 64, size),
        nameof(SumOverRows) => Reduce.SumCost(size, 64),
        nameof(PhiloxNormal) => Philox.Cost(size, normal: true),
        nameof(AdamW) => Adam.AdamWCost(size),
        _ => new KernelCost(0, 0),
    };
}

/// <summary>Square SGEMM, each version.</summary>
public class GemmKernels
{
    ComputeDevice d = null!;
    Tensor a = null!, b = null!, c = null!;

    [ParamsSource(nameof(Sizes))]
    public int Size;

    /// <summary>The CPU accelerator runs v2's barriers on OS threads (about 0.002 GFLOP/s): small sizes there.</summary>
    public static IEnumerable<int> Sizes => Devices.OnCpu ? [32, 64] : [512, 4096];

    [GlobalSetup]
    public void Setup()
    {
        d = ComputeDevice.Open();
        a = d.Empty([Size, Size]); b = d.Empty([Size, Size]); c = d.Empty([Size, Size]);
        Philox.Draw(d.Accelerator, a.View, a.Length, 1, 0, normal: true);
        Philox.Draw(d.Accelerator, b.View, b.Length, 2, 0, normal: true);
        d.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => d.Dispose();

    GemmShape Shape => new() { Batch = 1, M = Size, N = Size, K = Size, StrideC = Size * Size, Alpha = 1 };

    [Benchmark] public void GemmV1() { Gemm.Run(d.Accelerator, a.View, b.View, c.View, Shape, GemmVersion.V1Naive); d.Synchronize(); }
    [Benchmark] public void GemmV2() { Gemm.Run(d.Accelerator, a.View, b.View, c.View, Shape, GemmVersion.V2Tiled); d.Synchronize(); }

    public static KernelCost Cost(string method, int size)
        => Gemm.Cost(new GemmShape { Batch = 1, M = size, N = size, K = size, Alpha = 1 });
}
