using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

/// <summary>KD_KERNELS=auto: per-shape version choice by trial (Autotuner), checked against the default's output.</summary>
[Collection("device")]
public sealed class AutotunerTests(DeviceFixture fixture)
{
    ComputeDevice D => fixture.Device;

    /// <summary>A tuner whose clock is a table: each "version" writes its own values, and takes the time the table gives
    /// it, so the choice does not depend on this machine's speed.</summary>
    sealed class FakeVersions(Accelerator acc, Dictionary<GemmVersion, (float[] Output, double Ms)> table)
    {
        public readonly List<GemmVersion> Ran = [];
        GemmVersion last;
        public readonly MemoryBuffer1D<float, Stride1D.Dense> Output = acc.Allocate1D<float>(4);
        public Autotuner Tuner() => new(acc, run => { run(); return table[last].Ms; });
        public void Run(GemmVersion v)
        {
            if (table[v].Output.Length == 0) throw new InvalidOperationException("cannot run here");
            last = v;
            Ran.Add(v);
            Output.View.CopyFromCPU(table[v].Output);
        }
    }

    static readonly float[] Right = [1.5f, -2f, 0.25f, 3f];

    [Fact]
    public void TheFastestVersionThatMatchesTheDefaultIsChosenAndKept()
    {
        var fake = new FakeVersions(D.Accelerator, new()
        {
            [GemmVersion.V2Tiled] = (Right, 5.0),                                     // the default
            [GemmVersion.V1Naive] = ([1.5f, -2f, 0.25f, 3.0001f], 2.0),               // matches within 1e-4 of 3
            [GemmVersion.V3Rows] = ([1.5f, -2f, 0.26f, 3f], 0.5),                     // fastest, but wrong
            [GemmVersion.V4Blocked] = ([], 0.1),                                      // throws
            [GemmVersion.V5Tf32] = ([1.5f, float.NaN, 0.25f, 3f], 0.1),               // not finite
        });
        var tuner = fake.Tuner();
        var said = new List<string?>();
        tuner.Trying = said.Add;
        var all = Enum.GetValues<GemmVersion>();
        var v = tuner.Choose("gemm", "shape A", GemmVersion.V2Tiled, all, fake.Run, fake.Output.View);
        Assert.Equal("tuning kernels, shape 1: gemm shape A: v2.tiled (the default)", said[0]);
        Assert.Contains("tuning kernels, shape 1: gemm shape A: checking v3.rows against the default", said);
        Assert.Null(said[^1]);                              // done: the progress bar gets its own text back
        Assert.Equal(GemmVersion.V1Naive, v);
        Assert.Equal(GemmVersion.V1Naive, fake.Ran[^1]);   // the chosen version ran last: the output is its own
        var choice = Assert.Single(tuner.Choices);
        Assert.Equal(("v1.naive", "v2.tiled", 2.0, 5.0), (choice.Version, choice.Default, choice.Ms, choice.DefaultMs));
        Assert.Contains("output 2 is 0.26 where the default gives 0.25", choice.Trials.Single(t => t.Version == "v3.rows").Rejected);
        Assert.Contains("cannot run here", choice.Trials.Single(t => t.Version == "v4.blocked").Rejected);
        Assert.Contains("NaN", choice.Trials.Single(t => t.Version == "v5.tf32").Rejected);
        // Outputs came to the host only to explain the two mismatches (the candidate's and the default's each time);
        // v1's match, and the default's scale, were found on the device.
        Assert.Equal(4, tuner.HostReads);
        Assert.Contains("gemm shape A: v1.naive 2.000 ms (default v2.tiled 5.000 ms)", Assert.Single(tuner.Summary()));

        fake.Ran.Clear();
        Assert.Equal(GemmVersion.V1Naive, tuner.Choose("gemm", "shape A", GemmVersion.V2Tiled, all, fake.Run, fake.Output.View));
        Assert.Equal([GemmVersion.V1Naive], fake.Ran);     // known shape: no trials
        Assert.Single(tuner.Choices);

        // Another shape tunes again; the default wins when nothing that matches is faster.
        Assert.Equal(GemmVersion.V2Tiled, tuner.Choose("gemm", "shape B", GemmVersion.V2Tiled, [GemmVersion.V3Rows], fake.Run, fake.Output.View));
        Assert.Equal(GemmVersion.V2Tiled, fake.Ran[^1]);
        Assert.Equal(2, tuner.Choices.Count);
        // v3's rejection there was explained from the host (two reads); a shape whose candidate matches reads nothing
        // (before the device comparison, every candidate and the default were read: this would add two).
        Assert.Equal(6, tuner.HostReads);
        Assert.Equal(GemmVersion.V1Naive, tuner.Choose("gemm", "shape C", GemmVersion.V2Tiled, [GemmVersion.V1Naive], fake.Run, fake.Output.View));
        Assert.Equal(6, tuner.HostReads);
    }

    [Fact]
    public void AShapeWithOneVersionIsNotTried()
    {
        var fake = new FakeVersions(D.Accelerator, new() { [GemmVersion.V2Tiled] = (Right, 5.0) });
        var tuner = new Autotuner(D.Accelerator, _ => throw new InvalidOperationException("timed"));
        Assert.Equal(GemmVersion.V2Tiled, tuner.Choose("gemm", "s", GemmVersion.V2Tiled, [GemmVersion.V2Tiled], fake.Run, fake.Output.View));
        Assert.Equal([GemmVersion.V2Tiled], fake.Ran);
        Assert.Empty(tuner.Choices);
    }

    [Fact]
    public void ADefaultOutputThatIsNotFiniteChoosesNothing()
    {
        var fake = new FakeVersions(D.Accelerator, new()
        {
            [GemmVersion.V2Tiled] = ([1f, float.PositiveInfinity, 0f, 0f], 5.0),
            [GemmVersion.V1Naive] = ([1f, float.PositiveInfinity, 0f, 0f], 1.0),
        });
        var tuner = fake.Tuner();
        Assert.Equal(GemmVersion.V2Tiled, tuner.Choose("gemm", "s", GemmVersion.V2Tiled, [GemmVersion.V1Naive], fake.Run, fake.Output.View));
        Assert.DoesNotContain(GemmVersion.V1Naive, fake.Ran);
        Assert.Empty(tuner.Choices);
    }

    [Fact]
    public void AutoIsReadFromKdKernelsAndANamedVersionWins()
    {
        var v = new KernelVersions();
        v.Force("auto");
        Assert.True(v.Tunes("gemm") && v.Tunes("conv") && v.Tunes("groupnorm") && v.Tunes("attention"));
        Assert.Equal("gemm=auto,conv=auto,groupnorm=auto,attention=auto", v.ToString());
        v.Force("conv=v5");
        Assert.False(v.Tunes("conv"));
        Assert.Equal(ConvVersion.V5RegisterTiles, v.Conv);
        v.Force("Conv=AUTO");
        Assert.Null(v.Conv);
        Assert.True(v.Tunes("conv"));
        var both = new KernelVersions();
        both.Force("gemm=v4,auto");                        // a version named anywhere in the list wins over auto
        Assert.Equal(("gemm=v4,conv=auto,groupnorm=auto,attention=auto", false), (both.ToString(), both.Tunes("gemm")));
        var e = Assert.Throws<KdException>(() => new KernelVersions().Force("reduce=auto"));
        Assert.Contains("only gemm, conv, groupnorm, attention tune themselves per shape; name a version of reduce instead", e.Message);
        Assert.Contains("'matmul' is not a kernel family", Assert.Throws<KdException>(() => new KernelVersions().Force("matmul=auto")).Message);
        Assert.False(v.With(x => x.Force("conv=v2"), () => v.Tunes("conv")));   // inside: the named version
        Assert.True(v.Tunes("conv"));                      // after: With restores auto too
        var none = new KernelVersions();
        Assert.True(none.With(x => x.Force("auto"), () => none.Tunes("gemm")));
        Assert.Equal("", none.ToString());
    }

    [Fact]
    public void ChoicesAreKeptInTheTuningCacheForTheSameKernelsOnly()
    {
        var dir = Directory.CreateTempSubdirectory("kd-tune");
        try
        {
            string path = Path.Combine(dir.FullName, "sub", "cuda-card.json");
            var table = new Dictionary<GemmVersion, (float[] Output, double Ms)>
                { [GemmVersion.V2Tiled] = (Right, 5.0), [GemmVersion.V3Rows] = (Right, 5.0), [GemmVersion.V4Blocked] = (Right, 1.0) };
            var fake = new FakeVersions(D.Accelerator, table);
            GemmVersion[] both = [GemmVersion.V2Tiled, GemmVersion.V4Blocked];
            var first = new Autotuner(D.Accelerator, run => { run(); return fake.Ran[^1] == GemmVersion.V4Blocked ? 1.0 : 5.0; }, new TuningCache(path, "build-1"));
            Assert.Equal(GemmVersion.V4Blocked, first.Choose("gemm", "s", GemmVersion.V2Tiled, both, fake.Run, fake.Output.View));
            Assert.True(File.Exists(path));

            // A later process with the same kernels: the choice is read back, and nothing is tried.
            fake.Ran.Clear();
            var again = new Autotuner(D.Accelerator, _ => throw new InvalidOperationException("timed"), new TuningCache(path, "build-1"));
            Assert.Equal(GemmVersion.V4Blocked, again.Choose("gemm", "s", GemmVersion.V2Tiled, both, fake.Run, fake.Output.View));
            Assert.Equal([GemmVersion.V4Blocked], fake.Ran);
            Assert.Contains("gemm s: v4.blocked 1.000 ms (default v2.tiled 5.000 ms) [from the tuning cache]", Assert.Single(again.Summary()));
            // ... unless the cached version cannot run here: then the shape is tuned again.
            fake.Ran.Clear();
            var narrower = new Autotuner(D.Accelerator, run => { run(); return 5.0; }, new TuningCache(path, "build-1"));
            Assert.Equal(GemmVersion.V2Tiled, narrower.Choose("gemm", "s", GemmVersion.V2Tiled, [GemmVersion.V2Tiled, GemmVersion.V3Rows], fake.Run, fake.Output.View));
            Assert.False(narrower.Choices.Single().Cached);

            // Other kernels: the file is ignored and rewritten.
            fake.Ran.Clear();
            var rebuilt = new Autotuner(D.Accelerator, run => { run(); return 1.0; }, new TuningCache(path, "build-2"));
            rebuilt.Choose("gemm", "s", GemmVersion.V2Tiled, both, fake.Run, fake.Output.View);
            Assert.Contains(GemmVersion.V2Tiled, fake.Ran);
            Assert.Contains("build-2", File.ReadAllText(path));

            // A damaged file is reported and ignored, then rewritten whole.
            File.WriteAllText(path, "{\"kernels_build\": \"build-2\", \"choices\": {\"gemm s\": ");
            var err = new StringWriter();
            var old = Console.Error;
            Console.SetError(err);
            try { Assert.Null(new TuningCache(path, "build-2").Find("gemm s")); }
            finally { Console.SetError(old); }
            Assert.Contains($"tuning cache '{path}' cannot be read", err.ToString());
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void TheCacheFileIsNamedAfterTheDeviceOrByKdTuneCache()
    {
        var info = new DeviceInfo("cuda:0", "cuda", "NVIDIA H100 80GB HBM3", 0, 32, 1024, 49152, 132);
        var saved = Environment.GetEnvironmentVariable(TuningCache.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(TuningCache.EnvironmentVariable, null);
            Assert.EndsWith(Path.Combine("kerneldiffusion", "tuning", "cuda-NVIDIA_H100_80GB_HBM3.json"), TuningCache.PathFor(info));
            Environment.SetEnvironmentVariable(TuningCache.EnvironmentVariable, "OFF");
            Assert.Null(TuningCache.PathFor(info));
            Environment.SetEnvironmentVariable(TuningCache.EnvironmentVariable, "/tmp/t.json");
            Assert.Equal("/tmp/t.json", TuningCache.PathFor(info));
        }
        finally { Environment.SetEnvironmentVariable(TuningCache.EnvironmentVariable, saved); }
    }

    static float[] Values(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(2 * rng.NextDouble() - 1)).ToArray();
    }

    (float[] Y, float[] Dx, float[] Dw, float[] Db, float[] Mm, float[] Da, float[] Dg, float[] At, float[] Dqkv) ConvNormAndMatMul()
    {
        D.Tape.Reset();
        using var x = D.FromArray(Values(2 * 3 * 5 * 6, 11), [2, 3, 5, 6], "x");
        using var w = D.FromArray(Values(4 * 3 * 3 * 3, 12), [4, 3, 3, 3], "w");
        using var b = D.FromArray(Values(4, 13), [4], "b");
        using var r = D.FromArray(Values(2 * 4 * 5 * 6, 14), [2, 4, 5, 6], "r");
        using var a = D.FromArray(Values(5 * 7, 15), [5, 7], "a");
        using var m = D.FromArray(Values(7 * 3, 16), [7, 3], "m");
        using var gamma = D.FromArray(Values(4, 17), [4], "gamma");
        using var beta = D.FromArray(Values(4, 18), [4], "beta");
        using var qkv = D.FromArray(Values(2 * 12 * 5, 19), [2, 12, 5], "qkv");
        using var ra = D.FromArray(Values(2 * 4 * 5, 20), [2, 4, 5], "ra");
        foreach (var t in new[] { x, w, b, a, gamma, qkv }) t.RequiresGrad = true;
        var y = Ops.GroupNorm(Ops.Conv2d(x, w, b), gamma, beta, groups: 2, silu: true);
        var mm = Ops.MatMul(a, m);
        var at = Ops.Attention(qkv, heads: 2, newOrder: true);
        D.Tape.Backward(Ops.Add(Ops.Add(Ops.Sum(Ops.Mul(y, r)), Ops.Sum(Ops.Mul(mm, mm))), Ops.Sum(Ops.Mul(at, ra))));
        var result = (y.ToArray(), x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray(), mm.ToArray(), a.Grad!.ToArray(), gamma.Grad!.ToArray(), at.ToArray(), qkv.Grad!.ToArray());
        D.Tape.Reset();
        return result;
    }

    static void Near(float[] want, float[] got, string what)
    {
        double scale = want.Max(v => Math.Abs((double)v));
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-4 * scale, $"{what}[{i}]: {got[i]} against {want[i]}");
    }

    [Fact]
    public void TunedOpsGiveTheDefaultsResultsAndTuneEachShapeOnce()
    {
        var plain = ConvNormAndMatMul();
        // No tuning cache: this test must see its own trials. The reference copies come from the device's pool, as kd's do.
        D.Tuner = new Autotuner(D.Accelerator, pool: D.Pool);
        int inUse = D.Pool.InUse;
        var (first, second, choices) = D.Versions.With(v => v.Force("auto"), () =>
        {
            var f = ConvNormAndMatMul();
            int tuned = D.Tuner.Choices.Count;
            var s = ConvNormAndMatMul();
            Assert.Equal(tuned, D.Tuner.Choices.Count);   // the same shapes again: nothing new to tune
            return (f, s, D.Tuner.Choices);
        });
        Assert.Equal(inUse, D.Pool.InUse);   // every reference copy went back
        foreach (var run in new[] { first, second })
        {
            Near(plain.Y, run.Y, "y");
            Near(plain.Dx, run.Dx, "dx");
            Near(plain.Dw, run.Dw, "dw");
            Near(plain.Db, run.Db, "db");
            Near(plain.Mm, run.Mm, "a m");
            Near(plain.Da, run.Da, "da");
            Near(plain.Dg, run.Dg, "dgamma");
            Near(plain.At, run.At, "attention");
            Near(plain.Dqkv, run.Dqkv, "dqkv");
        }
        string[] passes = ["forward", "inputgrad", "weightgrad"];
        foreach (var pass in passes)
        {
            var c = Assert.Single(choices, c => c.Family == "conv" && c.Key == $"{pass} N2 C3->4 5x6 r3 s1 p1");
            // Every fp32 version meant for the CPU accelerator was tried and matched (v12, v13: Winograd covers 3x3 stride 1); no tf32
            // version, and not v2's 1 x 1 tiles.
            Assert.Equal(new[] { "v1.direct", "v3.planes", "v4.blocked", "v5.registertiles", "v8.hoisted", "v9.hoisted8", "v10.vector", "v11.vector4", "v12.winograd", "v13.winograd4", "v14.pipelined", "v15.pipelined4" }.Order(),
                c.Trials.Select(t => t.Version).Order());
            Assert.All(c.Trials, t => Assert.Null(t.Rejected));
        }
        Assert.Equal(new[] { "v1.naive", "v3.rows", "v4.blocked", "v6.blocked8", "v7.vector", "v8.vector4", "v9.cpublocks", "v10.pipelined", "v11.pipelined4" }.Order(), choices.Single(c => c.Family == "gemm" && c.Key == "batch 1 5x7 x 7x3 strides 0/0")
            .Trials.Select(t => t.Version).Order());
        // GroupNorm's forward has three versions (v3's is v2's, v5's v4's), its backward four (v4's is v3's).
        Assert.Equal(["v1.pergroup", "v2.grouptree", "v4.fused"], choices.Single(c => c.Key == "forward N2 C4 HW30 G2 +silu").Trials.Select(t => t.Version).Order());
        var back = choices.Single(c => c.Key == "backward N2 C4 HW30 G2 +silu");
        Assert.Equal(["v1.pergroup", "v2.grouptree", "v3.fusedbackward", "v5.fusedrows"], back.Trials.Select(t => t.Version).Order());
        Assert.All(back.Trials, t => Assert.Null(t.Rejected));
        // Attention in training tries every version's forward with its backward (v2, v4, v6 and v7 too: on the CPU only at
        // shapes this small); the backward then runs with the chosen version.
        var attention = Assert.Single(choices, c => c.Family == "attention");
        Assert.Equal("forward+backward N2 C4 T5 heads 2", attention.Key);
        Assert.Equal(["v1.gemm", "v2.streaming", "v3.sharedhead", "v4.tiled", "v6.tiledscores", "v7.tiledscoresdk"],
            attention.Trials.Select(t => t.Version).Order());
        Assert.All(attention.Trials, t => Assert.Null(t.Rejected));
        Assert.Null(D.Versions.Conv);
        Assert.False(D.Versions.Tunes("conv"));
    }
    /// <summary>Attention tuned across what the forward keeps (v1 the weights, v4 the log-sum-exp): a timer that finds
    /// every run launching v4's kernels fastest makes the training choice v4, tried forward and backward together; the
    /// results are the default's; once chosen, a step launches v4's backward once (the trial's extra backward is not
    /// repeated); a forward alone (no gradient, as in sampling) is tuned apart, under its own key.</summary>
    [Fact]
    public void AttentionTunesForwardAndBackwardTogetherInTraining()
    {
        (float[] A, float[] Dqkv) Run(bool grad)
        {
            D.Tape.Reset();
            using var qkv = D.FromArray(Values(2 * 12 * 5, 21), [2, 12, 5], "qkv");
            using var r = D.FromArray(Values(2 * 4 * 5, 22), [2, 4, 5], "r");
            qkv.RequiresGrad = grad;
            var a = Ops.Attention(qkv, heads: 2, newOrder: true);
            if (grad) D.Tape.Backward(Ops.Sum(Ops.Mul(a, r)));
            var result = (a.ToArray(), grad ? qkv.Grad!.ToArray() : []);
            D.Tape.Reset();
            return result;
        }
        static long Launches(string prefix) => KernelCache.LaunchesByKernel().Where(kv => kv.Key.StartsWith(prefix)).Sum(kv => kv.Value);
        var plain = Run(grad: true);
        var before = D.Tuner;
        try
        {
            D.Tuner = new Autotuner(D.Accelerator, time: run => { long n = Launches("attention.v4."); run(); return Launches("attention.v4.") > n ? 1 : 2; });
            var (tuned, again, backwardsInAStep, choices) = D.Versions.With(v => v.Force("attention=auto"), () =>
            {
                var t = Run(grad: true);
                long n = Launches("attention.v4.query_grad");
                var a = Run(grad: true);
                long once = Launches("attention.v4.query_grad") - n;
                Run(grad: false);
                return (t, a, once, D.Tuner.Choices);
            });
            foreach (var run in new[] { tuned, again })
            {
                Near(plain.A, run.A, "a");
                Near(plain.Dqkv, run.Dqkv, "dqkv");
            }
            var both = choices.Single(c => c.Key == "forward+backward N2 C4 T5 heads 2");
            Assert.Equal(("v4.tiled", "v1.gemm"), (both.Version, both.Default));
            Assert.Equal(1, backwardsInAStep);
            var forwardAlone = choices.Single(c => c.Key == "forward N2 C4 T5 heads 2");
            Assert.Equal(["v1.gemm", "v2.streaming", "v3.sharedhead", "v4.tiled", "v6.tiledscores", "v7.tiledscoresdk"],
                forwardAlone.Trials.Select(t => t.Version).Order());
        }
        finally { D.Tuner = before; }
    }
}
