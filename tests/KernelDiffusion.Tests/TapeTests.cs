using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
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
    [Fact]
    public void TheOpProfileCountsEachOpsLaunches()
    {
        var profile = new OpProfiler();
        using var x = D.FromArray(Enumerable.Range(0, 2 * 8 * 15).Select(i => MathF.Sin(i)).ToArray(), [2, 8, 3, 5], "x");
        using var gamma = D.FromArray(Enumerable.Repeat(1f, 8).ToArray(), [8], "gamma");
        using var beta = D.FromArray(Enumerable.Repeat(0f, 8).ToArray(), [8], "beta");
        D.Profiler = profile;
        try
        {
            Ops.Add(x, x);
            Ops.Add(x, x);
            Ops.GroupNorm(x, gamma, beta, groups: 4);   // CPU default v1: statistics, then the apply
            D.Synchronize();
            profile.Close();
        }
        finally { D.Profiler = null; }
        Assert.Equal((2L, 2L), (profile.Totals["add"].Count, profile.Totals["add"].Launches));
        Assert.Equal(2L, profile.Totals["group_norm_stats"].Launches + profile.Totals["group_norm"].Launches);
        Assert.Contains("launches", profile.Report());
        // Rows past the table's length are summed in one line, not dropped.
        var lines = profile.Report(top: 1).Split('\n');
        Assert.Equal(4, lines.Length);   // the header, the longest op, the other two summed, the total
        Assert.StartsWith("(2 more ops)", lines[2]);
        // Split by the inputs' shapes: the two adds at one shape, GroupNorm's parts under GroupNorm's shapes.
        Assert.Equal((2L, 2L), (profile.ShapeTotals["add [2,8,3,5] [2,8,3,5]"].Count, profile.ShapeTotals["add [2,8,3,5] [2,8,3,5]"].Launches));
        Assert.Equal(2L, profile.ShapeTotals.Where(kv => kv.Key.StartsWith("group_norm") && kv.Key.EndsWith(" [2,8,3,5] [8] [8]")).Sum(kv => kv.Value.Launches));
        Assert.Equal(profile.Totals.Values.Sum(v => v.Launches), profile.ShapeTotals.Values.Sum(v => v.Launches));
        Assert.Equal(profile.Totals.Values.Sum(v => v.Ms), profile.ShapeTotals.Values.Sum(v => v.Ms), 6);
        Assert.Contains("add [2,8,3,5] [2,8,3,5]", profile.ShapeReport());
        Assert.All(profile.Totals.Values, v => Assert.Equal(0, v.HostMs));   // the host's clock: its times are the host's already
        // Each row's longest call: at least the row's mean, at most its total ("add" has two calls).
        Assert.All(profile.Totals.Values, v => Assert.InRange(v.LongestMs, v.Ms / v.Count, v.Ms));
        Assert.True(profile.Totals["add"].LongestMs < profile.Totals["add"].Ms);
        Assert.Contains("longest", profile.Report());
        Assert.DoesNotContain("host ms", profile.Report());
        Assert.DoesNotContain("host ms", profile.ShapeReport());
        D.Tape.Reset();
    }

    /// <summary>With stream markers (as on GPUs opened with profiling) nothing waits until Close, which measures every
    /// op between its markers: the same ops and launch counts as the host clock's profile, no synchronisation per op, and
    /// the times adding up to the span from the first mark to the last. Folded every 2 marks (measured as it goes, the
    /// running op's marker kept), the same.</summary>
    [Theory]
    [InlineData(4096)]
    [InlineData(2)]
    public void TheStreamMarkerProfileCountsTheSameOpsWithoutWaiting(int foldEvery)
    {
        using var d = ComputeDevice.Open("cpu", profiling: true);
        Assert.True(d.TakesStreamMarkers);
        Assert.False(d.NewProfiler().StreamMarkers);   // the CPU accelerator keeps the host's clock: its launches run as they are made
        var profile = new OpProfiler(streamMarkers: true, foldEvery);
        using var x = d.FromArray(Enumerable.Range(0, 2 * 8 * 15).Select(i => MathF.Sin(i)).ToArray(), [2, 8, 3, 5], "x");
        using var gamma = d.FromArray(Enumerable.Repeat(1f, 8).ToArray(), [8], "gamma");
        using var beta = d.FromArray(Enumerable.Repeat(0f, 8).ToArray(), [8], "beta");
        d.Profiler = profile;
        long waits = d.Waits;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            Ops.Add(x, x);
            Ops.Add(x, x);
            Ops.GroupNorm(x, gamma, beta, groups: 4);
            Assert.Equal(waits, d.Waits);   // no mark waited for the device (a fold waits on a marker, not counted there)
            if (foldEvery > 4) Assert.Empty(profile.Totals);   // nothing measured before Close
            else Assert.NotEmpty(profile.Totals);              // folded as it went
            profile.Close();
        }
        finally { d.Profiler = null; }
        double span = clock.Elapsed.TotalMilliseconds;
        Assert.Equal((2L, 2L), (profile.Totals["add"].Count, profile.Totals["add"].Launches));
        Assert.Equal(2L, profile.Totals["group_norm_stats"].Launches + profile.Totals["group_norm"].Launches);
        double total = profile.Totals.Values.Sum(v => v.Ms);
        Assert.True(total > 0 && total <= span, $"{total} ms measured in a span of {span} ms");
        Assert.Equal((2L, 2L), (profile.ShapeTotals["add [2,8,3,5] [2,8,3,5]"].Count, profile.ShapeTotals["add [2,8,3,5] [2,8,3,5]"].Launches));
        Assert.Equal(total, profile.ShapeTotals.Values.Sum(v => v.Ms), 6);
        // The host's time from each mark to the next, per op: every op has some, and together they fit in the span.
        Assert.All(profile.Totals, kv => Assert.True(kv.Value.HostMs > 0, $"{kv.Key}: no host time"));
        double host = profile.Totals.Values.Sum(v => v.HostMs);
        Assert.True(host <= span, $"{host} ms of host time in a span of {span} ms");
        Assert.Equal(host, profile.ShapeTotals.Values.Sum(v => v.HostMs), 6);
        Assert.Contains("host ms", profile.Report());
        // Folds (the device waited for, the markers measured and freed) are a row of their own, not an op's: none within
        // 4096 marks; folding every 2 marks, one before each op's mark but the first (4 ops, 2 of them GroupNorm's parts).
        if (foldEvery > 4) Assert.DoesNotContain(OpProfiler.FoldRow, profile.Totals.Keys);
        else Assert.True(profile.Totals[OpProfiler.FoldRow].Count >= 3, $"{profile.Totals[OpProfiler.FoldRow].Count} folds");
        d.Tape.Reset();
    }

    /// <summary>A backward node's work is charged to it ("op_grad"), not to the op marked before it: an add's backward
    /// allocates no output of its own, only copies its gradient into both parameters' clear gradients.</summary>
    [Fact]
    public void TheOpProfileChargesEachBackwardNodeItsOwnWork()
    {
        using var a = D.Parameter([1f, 2f, 3f], [3], "a");
        using var b = D.Parameter([4f, 5f, 6f], [3], "b");
        var profile = new OpProfiler();
        D.Profiler = profile;
        try
        {
            D.Tape.Backward(Ops.Sum(Ops.Add(a, b)));
            D.Synchronize();
            profile.Close();
        }
        finally { D.Profiler = null; }
        Assert.Equal((1L, 2L), (profile.Totals["add_grad"].Count, profile.Totals["add_grad"].Launches));
        Assert.Equal((1L, 2L), (profile.ShapeTotals["add_grad [3] [3]"].Count, profile.ShapeTotals["add_grad [3] [3]"].Launches));   // the forward's shapes
        Assert.Equal([1f, 1f, 1f], a.Grad!.ToArray());
        Assert.Equal([1f, 1f, 1f], b.Grad!.ToArray());
        D.Tape.Reset();
    }

    [Fact]
    public void AGradientGivenToBackwardIsOnlyRead()
    {
        // Backward(y, g) lends g to y without a copy. It reaches a through a reshape and an add unchanged, and c's backward
        // (run after the add's) adds into a's gradient: that must not be g's memory.
        using var v = D.Parameter([1f, 2f], [2], "v");
        var a = Ops.Scale(v, 1);
        var c = Ops.Scale(a, 3);
        var y = Ops.Reshape(Ops.Add(a, c), 1, 2);
        using var g = D.FromArray([10f, 20f], [1, 2], "g");
        D.Tape.Backward(y, g);
        Assert.Equal(new[] { 10f, 20f }, g.ToArray());
        Assert.Equal(new[] { 40f, 80f }, v.Grad!.ToArray());   // d(a + 3a)/dv = 4
        D.Tape.Reset();
        Assert.Equal(new[] { 10f, 20f }, g.ToArray());
    }

    [Fact]
    public void AnAddHandsItsGradientToOneInputAndCopiesItForTheOther()
    {
        // c reads b before the add: its backward runs after the add's and adds into b's gradient, which must not be
        // the buffer a's gradient is.
        using var v = D.Parameter([3f, 4f], [2], "v");
        using var w = D.Parameter([1f, 2f], [2], "w");
        var a = Ops.Scale(v, 2);
        var b = Ops.Scale(w, 3);
        var c = Ops.Scale(b, 5);
        D.Tape.Backward(Ops.Add(Ops.Sum(Ops.Add(a, b)), Ops.Sum(c)));
        Assert.Equal(new[] { 2f, 2f }, v.Grad!.ToArray());
        Assert.Equal(new[] { 18f, 18f }, w.Grad!.ToArray());
        D.Tape.Reset();
    }

    [Fact]
    public void ParameterGradientsAreWrittenInPlaceAndStillSumAcrossUsesAndBackwardCalls()
    {
        var rng = new Random(7);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        (float[] Values, int[] Shape, string Name)[] specs =
            [(R(8 * 4 * 9), [8, 4, 3, 3], "conv.weight"), (R(8), [8], "conv.bias"), (R(8), [8], "norm.weight"), (R(8), [8], "norm.bias"),
             (R(3 * 8), [3, 8], "w"), (R(3), [3], "b")];
        var ps = specs.Select(s => D.Parameter(s.Values, s.Shape, s.Name)).ToArray();
        using var x = D.FromArray(R(2 * 4 * 5 * 5), [2, 4, 5, 5], "x");
        using var c1 = D.FromArray(R(2 * 3), [2, 3], "c1");
        using var c2 = D.FromArray(R(3 * 2), [3, 2], "c2");
        using var c3 = D.FromArray(R(3), [3], "c3");
        // Every parameter is used twice (Features runs twice; w also through a reshape view), so each gradient is
        // first written over what its buffer holds and then added to.
        Tensor Features(Tensor[] p) => Ops.Mean(Ops.GroupNorm(Ops.Conv2d(x, p[0], p[1]), p[2], p[3], groups: 4, silu: true), [2, 3]);
        Tensor Linear(Tensor[] p) => Ops.Sum(Ops.Mul(Ops.Linear(Features(p), p[4], p[5]), c1));
        Tensor ThroughView(Tensor[] p) => Ops.Sum(Ops.Mul(Ops.MatMul(Ops.Reshape(p[4], 3, 8), Features(p), transB: true), c2));
        Tensor Both(Tensor[] p) => Ops.Add(Linear(p), ThroughView(p));

        long launches = 0;   // of the last Grads call's backward passes: kernels and device copies
        float[][] Grads(Tensor[] p, params Func<Tensor[], Tensor>[] losses)
        {
            foreach (var t in p) t.ZeroGrad();
            long start = 0;
            foreach (var loss in losses)
            {
                var l = loss(p);
                start -= KernelCache.Launches;
                D.Tape.Backward(l);
                start += KernelCache.Launches;
            }
            launches = start;
            var g = p.Select(t => t.Grad!.ToArray()).ToArray();
            D.Tape.Reset();
            return g;
        }

        // The same graph over temporary leaves (op outputs marked RequiresGrad by hand), which adopt their first
        // gradient without a copy: a parameter's, written straight into its slot, must cost no more.
        var sources = specs.Select(s => D.FromArray(s.Values, s.Shape, s.Name + ".leaf")).ToArray();
        var leaves = sources.Select(t => Ops.Scale(t, 1)).ToArray();
        foreach (var t in leaves) t.RequiresGrad = true;
        var leafGrads = Grads(leaves, Both);
        long leafLaunches = launches;
        Grads(ps, Both);   // the parameters' first gradients
        var both = Grads(ps, Both);   // after ZeroGrad
        Assert.Equal(leafLaunches, launches);
        for (int k = 0; k < ps.Length; k++) Assert.Equal(leafGrads[k], both[k]);

        // In AdamW's arenas a GroupNorm's gamma and beta gradients lie back to back: one reduction writes both.
        using (var opt = new KernelDiffusion.Training.AdamW(ps, 1e-3))
        {
            var inArena = Grads(ps, Both);
            Assert.Equal(leafLaunches - 1, launches);   // Features runs twice; only its first norm finds both clear
            for (int k = 0; k < ps.Length; k++) Assert.Equal(both[k], inArena[k]);
        }

        var linear = Grads(ps, Linear);
        var view = Grads(ps, ThroughView);
        var twice = Grads(ps, Linear, ThroughView);
        for (int k = 0; k < ps.Length; k++)
            for (int i = 0; i < linear[k].Length; i++)
            {
                float want = linear[k][i] + view[k][i];
                Assert.True(Math.Abs(both[k][i] - want) <= 1e-5f * (1 + Math.Abs(want)), $"{ps[k].Name}[{i}] in one graph: {both[k][i]} against {want}");
                Assert.True(Math.Abs(twice[k][i] - want) <= 1e-5f * (1 + Math.Abs(want)), $"{ps[k].Name}[{i}] over two backward calls: {twice[k][i]} against {want}");
            }
        // b's first gradient through Accumulate (an op of b's own shape, whose backward runs before Linear's), then
        // Linear's bias gradient: the second must be added, not written over the first.
        var own = Grads(ps, p => Ops.Add(Linear(p), Ops.Sum(Ops.Mul(p[5], c3))));
        var c3v = c3.ToArray();
        for (int i = 0; i < 3; i++) Assert.Equal(linear[5][i] + c3v[i], own[5][i], 5);
        foreach (var t in ps.Concat(sources)) t.Dispose();
    }
}
