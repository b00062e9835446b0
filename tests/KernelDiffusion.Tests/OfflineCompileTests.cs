using System.Diagnostics;
using System.Reflection;
using ILGPU;
using KernelDiffusion.Checks;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>Every kernel through ILGPU's real PTX and OpenCL C compilers, no device needed (see OfflineCompile).
/// The CPU accelerator runs kernels as .NET, so without this a kernel the GPU compiler rejects shows only on the GPU.</summary>
public sealed class OfflineCompileTests(ITestOutputHelper output)
{
    /// <summary>Kernels known not to compile for a target today ("target:Type.Method"). The test fails on any failure
    /// not listed here, and on a listed kernel that now compiles (so the list shrinks as kernels are fixed).</summary>
    static readonly HashSet<string> KnownFailures = [];

    [Fact]
    public void KernelNamingFindsEveryKernel()
    {
        var names = OfflineCompile.KernelMethods().Select(OfflineCompile.NameOf).ToList();
        // 51 kernels: every method passed to a LoadStreamKernel call (directly, or through Conv2d.RunPerPass).
        Assert.Equal(51, names.Count);
        Assert.Contains("Conv2d.V5Kernel", names);
        Assert.Contains("Gemm.V4Kernel", names);
        Assert.Contains("PeakRate.FmaKernel", names);
        Assert.Contains("Dropout.Kernel", names);
        Assert.Contains("Conv2d.V4WeightGradKernel", names);
        Assert.Contains("Gemm.V3Kernel", names);
    }

    [Theory]
    [InlineData("ptx")]
    [InlineData("opencl")]
    public void EveryKernelCompiles(string target)
    {
        var sw = Stopwatch.StartNew();
        var results = OfflineCompile.CompileAll(target);
        output.WriteLine($"{target}: {results.Count} kernels in {sw.Elapsed.TotalSeconds:F1} s");
        foreach (var r in results) output.WriteLine($"  {(r.Ok ? "ok  " : "FAIL")} {r.Kernel}: {r.Message}");

        Assert.Equal(OfflineCompile.KernelMethods().Count, results.Count);
        var unexpected = results.Where(r => !r.Ok && !KnownFailures.Contains($"{target}:{r.Kernel}"))
            .Select(r => $"{r.Kernel}: {r.Message}").ToList();
        var nowCompiling = results.Where(r => r.Ok && KnownFailures.Contains($"{target}:{r.Kernel}")).Select(r => r.Kernel).ToList();
        Assert.True(unexpected.Count == 0 && nowCompiling.Count == 0,
            $"{unexpected.Count} kernels failed to compile for {target}:\n" + string.Join("\n", unexpected)
            + (nowCompiling.Count > 0 ? $"\nnow compile, remove from KnownFailures: {string.Join(", ", nowCompiling)}" : ""));
    }

    // Kernels the CPU accelerator runs happily but ILGPU's GPU compiler must reject.
    static void AllocatingKernel(ArrayView<float> x) => x[0] = new object().GetHashCode();
    static void MathClampKernel(ArrayView<float> x) => x[0] = Math.Clamp(x[0], 0f, 1f);

    [Theory]
    [InlineData("ptx")]
    [InlineData("opencl")]
    public void ACompileFailsOnCodeTheGpuCompilerRejects(string target)
    {
        var bad = new[] { nameof(AllocatingKernel), nameof(MathClampKernel) }
            .Select(n => typeof(OfflineCompileTests).GetMethod(n, BindingFlags.Static | BindingFlags.NonPublic)!).ToList();
        var results = OfflineCompile.Compile(target, bad.Append(OfflineCompile.KernelMethods()[0]));
        foreach (var r in results) output.WriteLine($"{(r.Ok ? "ok  " : "FAIL")} {r.Kernel}: {r.Message}");
        Assert.False(results[0].Ok);
        Assert.False(results[1].Ok);
        Assert.True(results[2].Ok, "a good kernel after failed ones still compiles: " + results[2].Message);
    }
}
