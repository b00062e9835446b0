using KernelDiffusion.Checks;

namespace KernelDiffusion.Tests;

/// <summary>Every check of <c>kd check</c>, each as its own test, on the CPU accelerator.</summary>
[Collection("device")]
public sealed class KernelCheckTests(DeviceFixture fx)
{
    public static TheoryData<string> Names() => new(KernelChecks.Names);

    [Theory]
    [MemberData(nameof(Names))]
    public void KernelMatchesFloat64Reference(string name)
    {
        var r = KernelChecks.Run(fx.Device, name);
        Assert.True(r.Passed, $"{r.Kernel} {r.Shape}: relative error {r.RelError:E2} > tolerance {r.Tolerance:E0} ({r.Note})");
    }

    [Fact]
    public void ChecksCoverEveryKernelFamily()
    {
        var names = KernelChecks.Names;
        foreach (var family in new[] { "add", "sub", "mul", "scale", "silu", "sum", "mean", "gemm.v1", "gemm.v2", "gemm.v3", "conv2d.v3", "matmul", "linear",
                     "softmax", "log_softmax", "cross_entropy", "philox", "adamw", "ema" })
            Assert.Contains(names, n => n.StartsWith(family));
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    /// <summary>kd check's --filter and --exclude: a name runs when it contains the filter (any, without one) and none of
    /// the exclusions, case-insensitive. The GPU scripts check GEMM v22 and attention v15 in processes of their own this way.</summary>
    [Fact]
    public void FilterAndExcludeSelectChecks()
    {
        Assert.True(KernelChecks.Selected("gemm.v22.bulk.tiles.nn", null));
        Assert.True(KernelChecks.Selected("gemm.v22.bulk.tiles.nn", "GEMM.V22"));
        Assert.False(KernelChecks.Selected("gemm.v22.bulk.tiles.nn", null, ["gemm.v22"]));
        Assert.False(KernelChecks.Selected("gemm.v22.bulk.tiles.nn", "gemm", ["conv", "TILES"]));
        Assert.True(KernelChecks.Selected("gemm.v21.multi_tile_128", "gemm", ["gemm.v22"]));
        var kept = KernelChecks.Names.Select(n => n.Split(' ')[0]).Where(n => KernelChecks.Selected(n, "gemm.v2", ["gemm.v22"])).ToList();
        Assert.NotEmpty(kept);
        Assert.DoesNotContain(kept, n => n.StartsWith("gemm.v22"));
        // gpu-v21.sh checks attention v15 (its first GPU run) apart with --filter .cp_async, the rest with --exclude .cp_async.
        var names = KernelChecks.Names.Select(n => n.Split(' ')[0]).ToList();
        var cpAsync = names.Where(n => KernelChecks.Selected(n, ".cp_async")).ToList();
        Assert.Equal(6, cpAsync.Count);
        Assert.All(cpAsync, n => Assert.StartsWith("attention.", n));
        Assert.DoesNotContain(names.Where(n => KernelChecks.Selected(n, null, [".cp_async"])), n => n.Contains("v15") && n.StartsWith("attention."));
    }

    /// <summary>Reduce v4 takes a plan's elements as j times one step only where every output's elements lie so.</summary>
    [Theory]
    [InlineData(new[] { 256, 384, 128, 1 }, new[] { 1, 384, 128, 1 }, 384 * 128)]   // 1x1 weight products over N
    [InlineData(new[] { 256, 128, 14, 14 }, new[] { 256, 128, 1, 1 }, 1)]          // embedding gradient over H, W
    [InlineData(new[] { 3, 5, 7, 2 }, new[] { 3, 5, 1, 1 }, 1)]
    [InlineData(new[] { 1001 }, new[] { 1 }, 1)]
    [InlineData(new[] { 3, 5, 7, 2 }, new[] { 1, 5, 1, 2 }, 0)]                    // axes 0 and 2: two steps
    [InlineData(new[] { 11, 4, 13, 7 }, new[] { 1, 4, 1, 1 }, 0)]                  // axes 0, 2, 3: 0 breaks the run
    [InlineData(new[] { 4, 5 }, new[] { 4, 5 }, 1)]                                // nothing reduced: one element
    public void ReduceRunStepFindsConstantSteps(int[] shape, int[] to, int step)
    {
        var plan = Kernels.ReducePlan.Create(shape, to);
        Assert.Equal(step, plan.RunStep());
        if (step > 0)
            Assert.All(Enumerable.Range(0, plan.Count), j => Assert.Equal(j * step, plan.Offset(j)));
    }

    [Fact]
    public void ACheckFailsWhenTheKernelIsWrong()
    {
        // The harness must be able to fail: a broken 'kernel' (device output off by 1e-3) is caught.
        double err = KernelChecks.RelError([1.001f, 2.002f], [1.0, 2.0]);
        Assert.InRange(err, 9e-4, 1.1e-3);
        Assert.Equal(double.PositiveInfinity, KernelChecks.RelError([float.NaN, 1f], [1.0, 1.0]));
    }
}
