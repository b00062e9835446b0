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

    [Fact]
    public void ACheckFailsWhenTheKernelIsWrong()
    {
        // The harness must be able to fail: a broken 'kernel' (device output off by 1e-3) is caught.
        double err = KernelChecks.RelError([1.001f, 2.002f], [1.0, 2.0]);
        Assert.InRange(err, 9e-4, 1.1e-3);
        Assert.Equal(double.PositiveInfinity, KernelChecks.RelError([float.NaN, 1f], [1.0, 1.0]));
    }
}
