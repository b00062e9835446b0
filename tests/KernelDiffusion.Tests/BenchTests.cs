using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Benchmarks;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>kd bench's parts: the peak-rate kernel computes what its float64 reference says, the vector-Jacobian
/// backward the benchmarks use equals Backward(sum(y * g)), the case file's quick values replace the full ones, and
/// every quick case of bench/cases.json runs on the CPU accelerator with a cost and a launch count (no timing is
/// asserted).</summary>
[Collection("device")]
public sealed class BenchTests(DeviceFixture fx, ITestOutputHelper log)
{
    static string CasesPath
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "bench", "cases.json"))) return Path.Combine(dir.FullName, "bench", "cases.json");
            throw new FileNotFoundException("bench/cases.json above " + AppContext.BaseDirectory);
        }
    }

    [Fact]
    public void PeakRateKernelMatchesItsReference()
    {
        var acc = fx.Device.Accelerator;
        var shape = new PeakShape(Threads: 6, Group: 1, Iterations: 300);
        using var sink = acc.Allocate1D(Enumerable.Repeat(float.NaN, 6).ToArray());
        PeakRate.Run(acc, sink.View, shape);
        var got = sink.GetAsArray1D();
        for (int i = 0; i < 6; i++)
        {
            double want = PeakRate.Reference(i, 300);
            Assert.True(Math.Abs(got[i] - want) <= 1e-4 * Math.Abs(want), $"thread {i}: {got[i]} against {want}");
        }
        Assert.Equal(2.0 * 8 * 300 * 6, PeakRate.Flops(shape));
    }

    [Fact]
    public void VectorJacobianBackwardEqualsBackwardOfTheWeightedSum()
    {
        var d = fx.Device;
        var rng = new Random(3);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        using var x = d.FromArray(R(2 * 3 * 5 * 4), [2, 3, 5, 4], "x");
        using var w = d.FromArray(R(4 * 3 * 9), [4, 3, 3, 3], "w");
        using var g = d.FromArray(R(2 * 4 * 5 * 4), [2, 4, 5, 4], "g");
        x.RequiresGrad = w.RequiresGrad = true;

        d.Tape.Backward(Ops.Sum(Ops.Mul(Ops.Conv2d(x, w, null), g)));
        var (dx1, dw1) = (x.Grad!.ToArray(), w.Grad!.ToArray());
        d.Tape.Reset();
        x.ZeroGrad();
        w.ZeroGrad();
        d.Tape.Backward(Ops.Conv2d(x, w, null), g);
        var (dx2, dw2) = (x.Grad!.ToArray(), w.Grad!.ToArray());
        d.Tape.Reset();
        for (int i = 0; i < dx1.Length; i++) Assert.Equal(dx1[i], dx2[i], 5);
        for (int i = 0; i < dw1.Length; i++) Assert.Equal(dw1[i], dw2[i], 5);
        Assert.Throws<KdException>(() => d.Tape.Backward(Ops.Conv2d(x, w, null), x));   // wrong shape
        d.Tape.Reset();
        x.ZeroGrad();
        w.ZeroGrad();
    }

    [Fact]
    public void QuickValuesReplaceTheFullShapes()
    {
        var full = BenchCases.Load(CasesPath, quick: false);
        var quick = BenchCases.Load(CasesPath, quick: true);
        var f = full.Kernels.Single(c => (string)c["name"]! == "sgemm.4096");
        var q = quick.Kernels.Single(c => (string)c["name"]! == "sgemm.4096");
        Assert.Equal(4096, (int)f["m"]!);
        Assert.Equal(64, (int)q["m"]!);
        Assert.Null(q["quick"]);
        Assert.Contains("fmnist14", (string)quick.Steps[0]["config"]!);
        var e = Assert.Throws<KdException>(() => BenchCases.Load("/nonexistent/cases.json", quick: true));
        Assert.Contains("/nonexistent/cases.json", e.Message);
    }

    [Fact]
    public void EveryQuickCaseRunsWithACostAndLaunches()
    {
        var d = fx.Device;
        var timer = new BenchTimer(d) { BudgetMs = 1, MinReps = 1 };
        var runner = new BenchRunner(d, new Peak(10, 0.01), timer);
        var cases = BenchCases.Load(CasesPath, quick: true);
        var ops = new HashSet<string>();
        foreach (var c in cases.Kernels)
        {
            ops.Add((string)c["op"]!);
            foreach (var r in runner.Kernel(c))
            {
                log.WriteLine($"{r.Name} {r.Version}: {r.Ms:F3} ms, {r.Launches} launches");
                Assert.Null(r.Error);
                Assert.True(double.IsFinite(r.Ms) && r.Ms > 0, $"{r.Name} {r.Version}: {r.Ms} ms");
                Assert.True(r.Cost.Bytes > 0 && r.FloorMs > 0, $"{r.Name} {r.Version}: no cost");
                Assert.True(r.Launches >= 1, $"{r.Name} {r.Version}: {r.Launches} launches");
            }
        }
        Assert.Equal(["adamw", "attention", "conv3x3", "gemm", "group_norm", "sampling_step", "silu"], ops.Order());
        var step = runner.Step(cases.Steps.Single(c => (string)c["name"]! == "fmnist_unet.cfg_sampling_step.b20"), Path.GetDirectoryName(Path.GetDirectoryName(CasesPath))!);
        log.WriteLine($"{step.Name}: {step.Ms:F1} ms, {step.Launches} launches per step");
        Assert.Null(step.Error);
        Assert.True(step.Launches > 20, $"a CFG step of a UNet launched {step.Launches} kernels");
    }
}
