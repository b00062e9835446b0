using KernelDiffusion.Autodiff;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

[Collection("device")]
public sealed class TapeTests(DeviceFixture fx)
{
    ComputeDevice D => fx.Device;

    [Fact]
    public void GradientsAccumulateAcrossBackwardCallsUntilZeroGrad()
    {
        using var w = D.Parameter([0.5f, -1f, 2f], [3], "w");
        using var x = D.FromArray([1f, 2f, 3f], [3], "x");
        for (int i = 0; i < 2; i++) D.Tape.Backward(Ops.Sum(Ops.Mul(w, x)));
        Assert.Equal(new[] { 2f, 4f, 6f }, w.Grad!.ToArray());
        w.ZeroGrad();
        D.Tape.Backward(Ops.Sum(Ops.Mul(w, x)));
        Assert.Equal(new[] { 1f, 2f, 3f }, w.Grad!.ToArray());
        D.Tape.Reset();
    }

    [Fact]
    public void GradientWithRespectToAnInputMarkedForIt()
    {
        // d/dx sum(log_softmax(x W^T)[:, y]): what classifier guidance needs, through the whole tape.
        using var w = D.FromArray([1f, 0f, 0f, 1f, 1f, 1f], [3, 2], "w");
        using var x = D.FromArray([0.3f, -0.2f], [1, 2], "x_t");
        x.RequiresGrad = true;
        using var y = D.Labels([2], 3);
        var logp = Ops.Scale(Ops.Sum(Ops.CrossEntropy(Ops.Linear(x, w, null), y)), -1);
        D.Tape.Backward(logp);
        // logits = (0.3, -0.2, 0.1); d log p_2 / d logits = onehot(2) - softmax; d/dx = that times W.
        double[] z = [0.3, -0.2, 0.1];
        var p = z.Select(Math.Exp).ToArray();
        double s = p.Sum();
        var dz = p.Select((v, i) => (i == 2 ? 1 : 0) - v / s).ToArray();
        double[] want = [dz[0] + dz[2], dz[1] + dz[2]];
        var got = x.Grad!.ToArray();
        Assert.Equal(want[0], got[0], 5);
        Assert.Equal(want[1], got[1], 5);
        Assert.Null(w.Grad);
        D.Tape.Reset();
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        using var w = D.Parameter([1f, 2f], [2], "w");
        using (D.Tape.NoGrad())
        {
            var y = Ops.Silu(Ops.Mul(w, w));
            Assert.False(y.RequiresGrad);
            Assert.Equal(0, D.Tape.NodeCount);
        }
        Assert.True(Ops.Silu(w).RequiresGrad);
        D.Tape.Reset();
    }

    [Fact]
    public void ResetReturnsEveryTemporaryAndGradientToThePool()
    {
        D.Tape.Reset();
        int before = D.Pool.InUse;
        using var w = D.Parameter([1f, 2f, 3f, 4f, 5f, 6f], [2, 3], "w");
        using var x = D.FromArray([1f, 2f, 3f], [1, 3], "x");
        D.Tape.Backward(Ops.Mean(Ops.Silu(Ops.MatMul(x, w, transB: true))));
        Assert.True(D.Tape.TemporaryCount > 0);
        D.Tape.Reset();
        Assert.Equal(0, D.Tape.TemporaryCount);
        Assert.Equal(before + 3, D.Pool.InUse); // w, w.grad, x
    }

    [Fact]
    public void TheSameTensorUsedTwiceGetsBothContributions()
    {
        using var a = D.Parameter([3f], [1], "a");
        D.Tape.Backward(Ops.Sum(Ops.Add(Ops.Mul(a, a), a)));  // d(a^2 + a)/da = 2a + 1
        Assert.Equal(7f, a.Grad!.ToArray()[0]);
        D.Tape.Reset();
    }
}
