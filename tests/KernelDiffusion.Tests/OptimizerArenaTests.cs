using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;

namespace KernelDiffusion.Tests;

/// <summary>AdamW's parameter arena: one launch for a step, an EMA update or ZeroGrad, with the same bits as the
/// per-tensor kernels it replaced, and the arena's memory tied to the parameters' lifetime.</summary>
[Collection("device")]
public sealed class OptimizerArenaTests(DeviceFixture fx)
{
    ComputeDevice D => fx.Device;

    static readonly int[][] Ragged = [[7], [1003], [33, 5]];

    static float[] Random(Random rng, int n, float scale) => Enumerable.Range(0, n).Select(_ => scale * (float)(2 * rng.NextDouble() - 1)).ToArray();

    Tensor[] Parameters(int[][] shapes, Random rng)
        => shapes.Select((s, i) => D.Parameter(Random(rng, s.Aggregate(1, (a, b) => a * b), 1f), s, $"p{i}")).ToArray();

    /// <summary>Backward of sum(p * g) over every parameter: each gradient is exactly g.</summary>
    void Backward(Tensor[] ps, Tensor[] gs)
    {
        var loss = Ops.Sum(Ops.Mul(ps[0], gs[0]));
        for (int i = 1; i < ps.Length; i++) loss = Ops.Add(loss, Ops.Sum(Ops.Mul(ps[i], gs[i])));
        D.Tape.Backward(loss);
    }

    [Fact]
    public void TheArenaGivesBitwiseWhatThePerTensorKernelsGave()
    {
        const double lr = 1e-2, wd = 0.1;
        var rng = new Random(3);
        var ps = Parameters(Ragged, rng);
        // The reference: the old path, one AdamW and one EMA kernel per tensor, on separate copies.
        var refP = ps.Select(p => D.FromArray(p.ToArray(), p.Shape, p.Name + ".ref")).ToArray();
        var refM = ps.Select(p => D.Zeros(p.Shape, p.Name + ".m.ref")).ToArray();
        var refV = ps.Select(p => D.Zeros(p.Shape, p.Name + ".v.ref")).ToArray();
        var refE = ps.Select(p => D.FromArray(p.ToArray(), p.Shape, p.Name + ".ema.ref")).ToArray();
        var initial = ps.Select(p => p.ToArray()).ToArray();
        var opt = new AdamW(ps, lr, wd);
        var ema = new Ema(ps, 0.99);
        var gs = new Tensor[ps.Length];
        try
        {
            for (int step = 0; step < 4; step++)
            {
                for (int i = 0; i < ps.Length; i++)
                {
                    gs[i]?.Dispose();
                    gs[i] = D.FromArray(Random(rng, ps[i].Length, 0.5f), ps[i].Shape, $"g{i}");
                }
                opt.ZeroGrad();
                Backward(ps, gs);
                opt.Step();
                ema.Update(step);
                D.Tape.Reset();
                var s = AdamStep.Create(lr, opt.Beta1, opt.Beta2, opt.Eps, wd, step + 1);
                float rate = (float)Math.Min(0.99, (1.0 + step) / (10.0 + step));
                for (int i = 0; i < ps.Length; i++)
                {
                    Adam.AdamW(D.Accelerator, refP[i].View, gs[i].View, refM[i].View, refV[i].View, s, ps[i].Length);
                    Adam.Ema(D.Accelerator, refE[i].View, refP[i].View, rate, ps[i].Length);
                }
            }
            for (int i = 0; i < ps.Length; i++)
            {
                Assert.Equal(gs[i].ToArray(), ps[i].Grad!.ToArray());
                Assert.NotEqual(initial[i], ps[i].ToArray());
                Assert.Equal(refP[i].ToArray(), ps[i].ToArray());
                Assert.Equal(refM[i].ToArray(), opt.State[i].M.ToArray());
                Assert.Equal(refV[i].ToArray(), opt.State[i].V.ToArray());
                Assert.Equal(refE[i].ToArray(), ema.Shadows[i].ToArray());
                Assert.Equal(ps[i].Shape, opt.State[i].M.Shape);
                Assert.Same(ps[i], opt.State[i].P);
            }
        }
        finally
        {
            opt.Dispose();
            ema.Dispose();
            foreach (var t in ps.Concat(refP).Concat(refM).Concat(refV).Concat(refE).Concat(gs)) t.Dispose();
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(40)]
    public void AStepAnEmaUpdateAndZeroGradAreOneLaunchEach(int count)
    {
        var rng = new Random(count);
        var shapes = Enumerable.Range(0, count).Select(i => Ragged[i % Ragged.Length]).ToArray();
        var ps = Parameters(shapes, rng);
        var gs = ps.Select(p => D.FromArray(Random(rng, p.Length, 1f), p.Shape, "g")).ToArray();
        using var opt = new AdamW(ps, 1e-3);
        using var slow = new Ema(ps, 0.9);
        using var fast = new Ema(ps, 0.5);
        Backward(ps, gs);
        long Launches(Action a)
        {
            long before = KernelCache.Launches;
            a();
            return KernelCache.Launches - before;
        }
        Assert.Equal(1, Launches(opt.Step));
        Assert.Equal(1, Launches(slow.Update));
        Assert.Equal(1, Launches(() => fast.Update(5)));
        Assert.Equal(1, Launches(opt.ZeroGrad));
        Assert.All(ps, p => Assert.All(p.Grad!.ToArray(), g => Assert.Equal(0f, g)));
        D.Tape.Reset();
        foreach (var t in ps.Concat(gs)) t.Dispose();
    }

    [Fact]
    public void TheArenasMemoryGoesBackWithTheParametersAndAStepNeedsEveryGradient()
    {
        D.Tape.Reset();
        int inUse = D.Pool.InUse;
        var ps = Parameters(Ragged, new Random(1));
        var opt = new AdamW(ps, 1e-3);
        var ema = new Ema(ps, 0.9);
        // Each parameter gave its own buffer up: the arenas of parameters, gradients, m, v and the EMA remain.
        Assert.Equal(inUse + 5, D.Pool.InUse);
        var e = Assert.Throws<KdException>(opt.Step);
        Assert.Contains("parameter 'p0' has no gradient", e.Message);
        Assert.Equal(0, opt.StepCount);
        opt.Dispose();
        ema.Dispose();
        Assert.Equal(inUse + 2, D.Pool.InUse);   // the model still owns its parameters and gradients
        var values = ps[1].ToArray();
        ps[0].Dispose();
        Assert.Equal(values, ps[1].ToArray());   // a slice gives no memory back by itself
        e = Assert.Throws<KdException>(() => ps[0].ToArray());
        Assert.Contains("tensor 'p0' [7] was used after its buffer went back to the pool", e.Message);
        ps[1].Dispose();
        ps[2].Dispose();
        Assert.Equal(inUse, D.Pool.InUse);
    }
}
