using ILGPU;
using ILGPU.Runtime.CPU;
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

    /// <summary>kd check runs a case twice on the same inputs: a kernel whose result changes between them (a race) fails.</summary>
    [Fact]
    public void CheckFailsAKernelThatChangesRunToRun()
    {
        int calls = 0;
        var racy = new Checks.KernelChecks.Case("racy", "[1]", (_, r) => (1e-7 * (1 + calls++ % 2) + 0 * r.NextDouble(), 1e-5, ""));
        var steady = new Checks.KernelChecks.Case("steady", "[1]", (_, r) => (1e-7 * r.NextDouble(), 1e-5, ""));
        var bad = Checks.KernelChecks.Run(fx.Device, racy, 3);
        Assert.False(bad.Passed);
        Assert.Contains("race", bad.Note);
        Assert.True(Checks.KernelChecks.Run(fx.Device, steady, 3).Passed);
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

    /// <summary>A case file BenchRunner could not read is refused before anything runs, naming the case and the field.</summary>
    [Theory]
    [InlineData("""{"name": "g", "op": "gemm", "m": 4, "k": 4}""", "case 'g' (gemm) needs \"n\": a positive integer, and has none")]
    [InlineData("""{"name": "g", "op": "gemm", "m": 4, "n": -2, "k": 4}""", "case 'g' (gemm) needs \"n\": a positive integer, not -2")]
    [InlineData("""{"name": "c", "op": "conv3x3", "x": [2, 3, 4], "cout": 4}""", "case 'c' (conv3x3) needs \"x\": four positive integers [N, C, H, W], not [2,3,4]")]
    [InlineData("""{"name": "p", "op": "conv3x3_pass", "pass": "backward", "x": [2, 3, 4, 4], "cout": 4}""", "needs \"pass\": forward, input_grad or weight_grad, not 'backward'")]
    [InlineData("""{"name": "a", "op": "attention", "batch": 2, "heads": 2, "head_dim": 4, "tokens": 5, "backward": "yes"}""", "case 'a' (attention) needs \"backward\": true or false")]
    [InlineData("""{"name": "f", "op": "fft"}""", "case 'f' has an unknown op 'fft' (ops here: silu,")]
    [InlineData("""{"op": "silu", "n": 4}""", "a case has no \"name\"")]
    public void ABadCaseIsRefusedBeforeAnythingRuns(string kernelCase, string message)
    {
        string path = Path.Combine(Path.GetTempPath(), $"kd-cases-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""{"kernels": [{"name": "fine", "op": "silu", "n": 8}, {{kernelCase}}], "steps": []}""");
        try
        {
            var e = Assert.Throws<KdException>(() => BenchCases.Load(path, quick: false));
            Assert.Contains(message, e.Message);
            Assert.Contains(path, e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void EveryQuickCaseRunsWithACostAndLaunches()
    {
        var d = fx.Device;
        using var timer = new BenchTimer(d) { BudgetMs = 1, MinReps = 1 };
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
                // The CPU accelerator as kd opens it has no 32-lane warps: the tf32 versions are left out, not errors.
                Assert.DoesNotContain("tf32", r.Version);
            }
        }
        Assert.Equal(["adamw", "attention", "conv3x3", "conv3x3_pass", "gemm", "group_norm", "sampling_step", "silu", "sum"], ops.Order());
        var step = runner.Step(cases.Steps.Single(c => (string)c["name"]! == "fmnist_unet.cfg_sampling_step.b20"), Path.GetDirectoryName(Path.GetDirectoryName(CasesPath))!);
        log.WriteLine($"{step.Name}: {step.Ms:F1} ms, {step.Launches} launches per step");
        Assert.Null(step.Error);
        Assert.True(step.Launches > 20, $"a CFG step of a UNet launched {step.Launches} kernels");
        // The per-kernel split adds up (each count divided by the 4 sampling steps, so within one per kernel).
        var split = step.LaunchesByKernel!;
        log.WriteLine(string.Join(", ", split.Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.Equal(1, split["sampling.step"]);
        Assert.InRange(step.Launches - split.Values.Sum(), 0, split.Count);
        // The host's issuing time is measured only between stream markers (GPUs): the CPU accelerator runs kernels as it
        // launches them, so there is none to tell apart.
        Assert.Null(step.HostMs);
        Assert.Null(step.GcPauseMs);
    }

    /// <summary>kd bench times a GroupNorm forward alone at the version whose forward kernels run, so a default without a
    /// forward of its own (v5 on GPUs from 14x14 planes) still gets its row; the first H200 run's --default-only table
    /// lost both forward cases when the default was filtered out.</summary>
    [Fact]
    public void AGroupNormForwardAloneRunsAtAVersionWithItsOwnForward()
    {
        foreach (var v in Enum.GetValues<GroupNormVersion>())   // the version kd bench times is one the forward case admits
            Assert.True(GroupNorm.HasOwnForward(GroupNorm.ForwardOf(v)), $"{v}'s forward is {GroupNorm.ForwardOf(v)}'s, which has none of its own");
        Assert.Equal(GroupNormVersion.V4Fused, GroupNorm.ForwardOf(GroupNormVersion.V5FusedRows));
        Assert.Equal(GroupNormVersion.V2GroupTree, GroupNorm.ForwardOf(GroupNormVersion.V3FusedBackward));
    }

    /// <summary>Waiting for the device (synchronising, reading back) is counted, so kd bench can tell a step's host time
    /// issuing work from its time waiting.</summary>
    [Fact]
    public void TheDeviceCountsTheHostsWaits()
    {
        var d = fx.Device;
        using var t = d.FromArray(Enumerable.Range(0, 1 << 16).Select(i => (float)i).ToArray(), [1 << 16], "t");
        long waits = d.Waits;   // (WaitMs only grows; its increments can be below the clock's resolution)
        var y = Ops.Silu(t);
        Assert.Equal(65535f, y.ToArray()[^1]);
        Assert.Equal(waits + 1, d.Waits);
        d.Synchronize();
        Assert.Equal(waits + 2, d.Waits);
        d.Tape.Reset();
    }
}

/// <summary>GEMM v4, conv v5 and GroupNorm's v2 backward as they run on a GPU: many-thread groups with barriers (16 x 16
/// for the 64 x 64 tiles), here on a CPU device whose groups hold 256 threads. kd check covers the 1-thread form the default CPU device runs.</summary>
public sealed class GemmGpuShapeTests
{
    static double RelError(float[] got, double[] want)
        => Math.Sqrt(got.Zip(want, (x, y) => (x - y) * (x - y)).Sum() / want.Sum(y => y * y));

    /// <summary>A CPU accelerator whose groups hold 256 threads (4-thread warps), so kernels run with a GPU's launch
    /// shapes, which the default CPU device (2-thread groups) cannot.</summary>
    sealed class GpuShaped : IDisposable
    {
        readonly Context context = Context.Create(b => b.CPU(new CPUDevice(4, 64, 1)));
        public Accelerator Acc { get; }
        public GpuShaped() => Acc = context.CreateCPUAccelerator(0);
        public void Dispose()
        {
            Acc.Dispose();
            context.Dispose();
        }
    }

    /// <summary>Uniform values in [-1, 1).</summary>
    static double[] Uniform(Random rng, int len) => Enumerable.Range(0, len).Select(_ => rng.NextDouble() * 2 - 1).ToArray();

    /// <summary>GEMM v12-v15 run only in 256-thread groups: elsewhere Runs says so (the tuner and kd bench leave them
    /// out), and forcing them is refused, naming the device's groups, before anything runs.</summary>
    [Theory]
    [InlineData(GemmVersion.V12Unrolled)]
    [InlineData(GemmVersion.V13Unrolled4)]
    [InlineData(GemmVersion.V14Padded)]
    [InlineData(GemmVersion.V15Padded4)]
    public void UnrolledGemmsRefuseSmallGroups(GemmVersion version)
    {
        using var context = Context.Create(b => b.CPU(new CPUDevice(2, 1, 1)));
        using var acc = context.CreateCPUAccelerator(0);
        using var gpuShaped = new GpuShaped();
        Assert.False(Gemm.Runs(acc, version));
        Assert.True(Gemm.Runs(gpuShaped.Acc, version));
        Assert.False(Gemm.Tunable(acc, version));
        using var c = acc.Allocate1D(Enumerable.Repeat(float.NaN, 4).ToArray());
        var e = Assert.Throws<VersionNotApplicableException>(() =>
            Gemm.Run(acc, c.View, c.View, c.View, new GemmShape { Batch = 1, M = 2, N = 2, K = 2, StrideC = 4, Alpha = 1 }, version));
        Assert.Contains($"gemm v{(int)version} needs groups of 256 threads", e.Message);
        Assert.Contains("groups of up to 2", e.Message);
        Assert.All(c.GetAsArray1D(), v => Assert.True(float.IsNaN(v)));   // nothing ran
    }

    /// <summary>v14 and v15 store C 16 bytes at a time only where every run of 4 columns starts 16-byte aligned and C
    /// is not read: a view 16 bytes into its buffer, N and the batch strides multiples of 4, Beta 0.</summary>
    [Fact]
    public void SixteenByteStoresOnlyWhereCIsAligned()
    {
        using var context = Context.Create(b => b.CPU(new CPUDevice(2, 1, 1)));
        using var acc = context.CreateCPUAccelerator(0);
        using var buf = acc.Allocate1D<float>(64);
        var s = new GemmShape { Batch = 2, M = 3, N = 8, K = 2, StrideC = 24, Alpha = 1 };
        Assert.True(Gemm.VectorC(buf.View, s));
        Assert.True(Gemm.VectorC(buf.View.SubView(4, 60), s));
        Assert.False(Gemm.VectorC(buf.View.SubView(2, 60), s));
        Assert.False(Gemm.VectorC(buf.View, s with { N = 6, StrideC = 18 }));
        Assert.False(Gemm.VectorC(buf.View, s with { StrideC = 26 }));
        Assert.False(Gemm.VectorC(buf.View, s with { Split = 2, OuterC = 50 }));
        Assert.False(Gemm.VectorC(buf.View, s with { Beta = 1 }));
    }

    /// <summary>Conv v12 and v13 (Winograd F(2x2) and F(4x4)) with 256-thread groups, their GEMMs run by the GPU's tiled
    /// GEMM versions, every pass, at ragged planes (sides overhang a tile) and past one 128-wide GEMM tile, the weight
    /// gradient whole and in 5 slices; scratch poisoned with NaN. GEMM v2 at both tile sizes and v8 at F(4x4) (together
    /// 82 s of the suite's 465, in 256 OS threads a group with a barrier per step), since 2026-11-27e v7 and v8 at F(2x2)
    /// (19 and 37 s of the suite's 526), and since 2026-11-28 v13 at F(4x4) (53 s of 579), are left to kd check's batched
    /// GEMM cases: the versions GPUs run by default here (v10, v11, v14, v15) cover both tile sizes, with v4 and v12.</summary>
    [Theory]
    [InlineData(GemmVersion.V4Blocked, 2)]
    [InlineData(GemmVersion.V10Pipelined, 2)]
    [InlineData(GemmVersion.V11Pipelined4, 4)]
    [InlineData(GemmVersion.V12Unrolled, 2)]
    [InlineData(GemmVersion.V14Padded, 2)]
    [InlineData(GemmVersion.V15Padded4, 4)]
    public void WinogradWithSixteenBySixteenGroupsMatchesTheReference(GemmVersion gemm, int side)
        => ConvPassesMatchTheReference(12, [ConvGeometry.Create(2, 5, 9, 10, 70, 3, 1, 1), ConvGeometry.Create(1, 130, 7, 6, 3, 3, 1, 1), ConvGeometry.Create(3, 20, 6, 5, 130, 3, 1, 1)],
            (acc, g, pass, x, w, b, dy, o, slices) =>
            {
                using var scratch = acc.Allocate1D<float>(Winograd.ScratchFloats(g, pass, slices, side));
                Elementwise.Fill(acc, scratch.View, float.NaN, (int)scratch.Length);
                Winograd.Run(acc, pass, g, x, w, dy, b, pass == ConvPass.Forward, o, scratch.View, slices, side, Gemm.At(acc, gemm));
            });

    /// <summary>Conv v16 and v17 (1x1 convolutions as batched GEMMs over the shared weight) with 256-thread groups, their
    /// GEMMs run by the GPU's padded versions, every pass, past one 128-wide GEMM tile, at a plane whose 20 columns let
    /// C be stored 16 bytes at a time and one whose 30 do not; v17's weight gradient as per-sample products and their
    /// sum (v16's is the direct default's); scratch poisoned with NaN.</summary>
    [Theory]
    [InlineData(ConvVersion.V16Gemm1x1, GemmVersion.V14Padded)]
    [InlineData(ConvVersion.V16Gemm1x1, GemmVersion.V15Padded4)]
    [InlineData(ConvVersion.V17Gemm1x1Weights, GemmVersion.V14Padded)]
    [InlineData(ConvVersion.V17Gemm1x1Weights, GemmVersion.V15Padded4)]
    public void PointwiseWithSixteenBySixteenGroupsMatchesTheReference(ConvVersion conv, GemmVersion gemm)
        => ConvPassesMatchTheReference(13, [ConvGeometry.Create(3, 70, 4, 5, 130, 1, 1, 0), ConvGeometry.Create(2, 130, 5, 6, 9, 1, 1, 0)],
            (acc, g, pass, x, w, b, dy, o, slices) =>
            {
                long length = Conv2d.ScratchLength(acc, g, pass, conv);
                using var scratch = acc.Allocate1D<float>(Math.Max(1, length));
                Elementwise.Fill(acc, scratch.View, float.NaN, (int)scratch.Length);
                Conv2d.Run(acc, pass, g, x, w, dy, b, pass == ConvPass.Forward, o, conv, length > 0 ? scratch.View : default, Gemm.At(acc, gemm));
            });

    /// <summary>How a test runs one conv pass into o; a weight gradient in 5 slices where <paramref name="slices"/> is 5.</summary>
    delegate void ConvPassRun(Accelerator acc, ConvGeometry g, ConvPass pass, ArrayView<float> x, ArrayView<float> w, ArrayView<float> b,
        ArrayView<float> dy, ArrayView<float> o, int slices);

    /// <summary>Each pass, and the weight gradient again in 5 slices, on a CPU device with 256-thread groups at random inputs,
    /// against the float64 reference.</summary>
    static void ConvPassesMatchTheReference(int seed, ConvGeometry[] geometries, ConvPassRun run)
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var rng = new Random(seed);
        double[] R(int len) => Uniform(rng, len);
        foreach (var g in geometries)
        {
            var (x, w, b, dy) = (R(g.N * g.Cin * g.H * g.W), R(g.Cout * g.Cin * g.R * g.R), R(g.Cout), R(g.N * g.Cout * g.Ho * g.Wo));
            using var dxIn = acc.Allocate1D(x.Select(v => (float)v).ToArray());
            using var dwIn = acc.Allocate1D(w.Select(v => (float)v).ToArray());
            using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
            using var ddy = acc.Allocate1D(dy.Select(v => (float)v).ToArray());
            using var y = acc.Allocate1D<float>(dy.Length);
            using var dx = acc.Allocate1D<float>(x.Length);
            using var dw = acc.Allocate1D<float>(w.Length);
            using var dwSplit = acc.Allocate1D<float>(w.Length);
            run(acc, g, ConvPass.Forward, dxIn.View, dwIn.View, db.View, ddy.View, y.View, 1);
            run(acc, g, ConvPass.InputGrad, dxIn.View, dwIn.View, db.View, ddy.View, dx.View, 1);
            run(acc, g, ConvPass.WeightGrad, dxIn.View, dwIn.View, db.View, ddy.View, dw.View, 1);
            run(acc, g, ConvPass.WeightGrad, dxIn.View, dwIn.View, db.View, ddy.View, dwSplit.View, 5);
            var (rdx, rdw) = Conv2d.Reference.Backward(x, w, dy, g);
            string at = $"{g.Cin}->{g.Cout} {g.H}x{g.W} s{g.S}";
            Assert.True(RelError(y.GetAsArray1D(), Conv2d.Reference.Forward(x, w, b, g)) < 1e-5, $"forward {at}");
            Assert.True(RelError(dx.GetAsArray1D(), rdx) < 1e-5, $"input grad {at}");
            Assert.True(RelError(dw.GetAsArray1D(), rdw) < 1e-5, $"weight grad {at}");
            Assert.True(RelError(dwSplit.GetAsArray1D(), rdw) < 1e-5, $"weight grad in 5 slices {at}");
        }
    }

    /// <summary>v12 refuses, naming the geometry, what Winograd does not cover and a scratch too small; through
    /// Conv2d.Run a stride-2 convolution runs the default version instead (no scratch asked for); the CPU's default is
    /// v13 only where it covers.</summary>
    [Fact]
    public void WinogradRefusesWhatItDoesNotCoverAndConvRunHandsItOn()
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var stride2 = ConvGeometry.Create(1, 2, 6, 6, 3, 3, 2, 1);
        using var a = acc.Allocate1D<float>(4096);
        var e = Assert.Throws<VersionNotApplicableException>(() => Winograd.Run(acc, ConvPass.Forward, stride2, a.View, a.View, a.View, a.View, false, a.View, a.View, 1, 4));
        Assert.Contains("conv2d v13 (Winograd) takes 3x3 kernels at stride 1 and pad 1", e.Message);
        Assert.Contains("r3 s2 p1", e.Message);
        var g = ConvGeometry.Create(1, 2, 6, 6, 3, 3, 1, 1);
        var small = Assert.Throws<ArgumentException>(() => Winograd.Run(acc, ConvPass.Forward, g, a.View, a.View, a.View, a.View, false, a.View, a.View.SubView(0, 10), 1, 2));
        Assert.Contains($"needs {Winograd.ScratchFloats(g, ConvPass.Forward, 1, 2)} floats of scratch, given 10", small.Message);
        Assert.Throws<ArgumentException>(() => Winograd.Run(acc, ConvPass.Forward, g, a.View, a.View, a.View, a.View, false, a.View, a.View, 1, 3));
        Assert.Equal(0, Conv2d.ScratchLength(acc, stride2, ConvPass.Forward, ConvVersion.V12Winograd));
        Assert.False(Conv2d.Covers(stride2, ConvVersion.V12Winograd) || Conv2d.Covers(stride2, ConvVersion.V13Winograd4));
        Assert.True(Conv2d.Covers(stride2, ConvVersion.V4Blocked) && Conv2d.Covers(g, ConvVersion.V12Winograd) && Conv2d.Covers(g, ConvVersion.V13Winograd4));
        // The CPU accelerator's default: v13 where Winograd covers the convolution, v4 elsewhere.
        Assert.Equal((ConvVersion.V13Winograd4, ConvVersion.V4Blocked), (Conv2d.Choose(acc, g), Conv2d.Choose(acc, stride2)));
        var rng = new Random(3);
        var (x, w) = (Uniform(rng, 2 * 6 * 6), Uniform(rng, 3 * 2 * 9));
        using var tx = acc.Allocate1D(x.Select(v => (float)v).ToArray());
        using var tw = acc.Allocate1D(w.Select(v => (float)v).ToArray());
        using var y = acc.Allocate1D<float>(3 * 3 * 3);
        Conv2d.Run(acc, ConvPass.Forward, stride2, tx.View, tw.View, tx.View, tw.View, false, y.View, ConvVersion.V13Winograd4);
        Assert.True(RelError(y.GetAsArray1D(), Conv2d.Reference.Forward(x, w, null, stride2)) < 1e-5);
    }

    /// <summary>GroupNorm's elementwise kernels (the forward's apply, v1's input gradient) in runs of 1 (GPUs), of a ragged
    /// length and of a whole plane (the CPU accelerator), with and without scale-shift and SiLU: y against the float64
    /// forward, dx and the sums equal to those of whole-plane runs (which kd check compares with finite differences);
    /// outputs poisoned with NaN first.</summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 0)]
    [InlineData(0, 1)]
    public void GroupNormInRunsMatchesTheReference(int scaleShift, int silu)
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var rng = new Random(10 + 2 * scaleShift + silu);
        var s = new GroupNormShape { N = 3, C = 6, HW = 23, Groups = 3, ScaleShift = scaleShift, Silu = silu, Eps = 1e-5f };
        int len = s.N * s.C * s.HW;
        var (x, gamma, beta, ss, g) = (Uniform(rng, len), Uniform(rng, s.C), Uniform(rng, s.C), Uniform(rng, s.N * 2 * s.C), Uniform(rng, len));
        var want = GroupNorm.Reference.Forward(x, gamma, beta, scaleShift != 0 ? ss : null, s);
        ArrayView<float> Up(double[] v, List<IDisposable> own) { var b = acc.Allocate1D(v.Select(e => (float)e).ToArray()); own.Add(b); return b.View; }
        ArrayView1D<float, Stride1D.Dense> Poisoned(int n, List<IDisposable> own) { var b = acc.Allocate1D(Enumerable.Repeat(float.NaN, n).ToArray()); own.Add(b); return b.View; }
        float[][] Run(int run)
        {
            var own = new List<IDisposable>();
            try
            {
                var (dx, dg, db, dss, dgo) = (Up(x, own), Up(gamma, own), Up(beta, own), Up(ss, own), Up(g, own));
                var (stats, y, sums, dssOut, dxOut) = (Poisoned(2 * s.N * s.Groups, own), Poisoned(len, own), Poisoned(2 * s.N * s.C, own), Poisoned(s.N * 2 * s.C, own), Poisoned(len, own));
                GroupNorm.Forward(acc, s, dx, dg, db, dss, stats, y, GroupNormVersion.V1PerGroup, run);
                GroupNorm.Backward(acc, s, dx, dg, db, dss, stats, dgo, sums, dssOut, dxOut, GroupNormVersion.V1PerGroup, run);
                return [y.GetAsArray1D(), dxOut.GetAsArray1D(), sums.GetAsArray1D()];
            }
            finally { foreach (var b in own) b.Dispose(); }
        }
        var plane = Run(s.HW);
        Assert.True(RelError(plane[0], want) < 1e-6, "whole-plane runs");
        foreach (int run in new[] { 1, 5 })
        {
            var r = Run(run);
            Assert.True(RelError(r[0], want) < 1e-6, $"y in runs of {run}");
            Assert.Equal(plane[1], r[1]);   // the same arithmetic per element: equal, not close
            Assert.Equal(plane[2], r[2]);
            Assert.DoesNotContain(r[1], float.IsNaN);
        }
    }

    /// <summary>GroupNorm v4's one-launch forward in groups of 16 threads (a 23-position plane) and 64 (77 positions),
    /// several (n, group) per group of threads: y against the float64 forward, the statistics against v2's; outputs
    /// poisoned with NaN first.</summary>
    [Theory]
    [InlineData(23, 1, 1)]
    [InlineData(77, 1, 1)]
    [InlineData(77, 0, 0)]
    public void GroupNormForwardV4MatchesTheReference(int hw, int scaleShift, int silu)
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var rng = new Random(hw + 2 * scaleShift + silu);
        var s = new GroupNormShape { N = 3, C = 8, HW = hw, Groups = 4, ScaleShift = scaleShift, Silu = silu, Eps = 1e-5f };
        int len = s.N * s.C * s.HW;
        var (x, gamma, beta, ss) = (Uniform(rng, len), Uniform(rng, s.C), Uniform(rng, s.C), Uniform(rng, s.N * 2 * s.C));
        var want = GroupNorm.Reference.Forward(x, gamma, beta, scaleShift != 0 ? ss : null, s);
        MemoryBuffer1D<float, Stride1D.Dense> Up(double[] v) => acc.Allocate1D(v.Select(e => (float)e).ToArray());
        MemoryBuffer1D<float, Stride1D.Dense> Poisoned(int n) => acc.Allocate1D(Enumerable.Repeat(float.NaN, n).ToArray());
        using var dx = Up(x);
        using var dg = Up(gamma);
        using var db = Up(beta);
        using var dss = Up(ss);
        float[][] Run(GroupNormVersion v)
        {
            using var stats = Poisoned(2 * s.N * s.Groups);
            using var y = Poisoned(len);
            GroupNorm.Forward(acc, s, dx.View, dg.View, db.View, dss.View, stats.View, y.View, v);
            return [y.GetAsArray1D(), stats.GetAsArray1D()];
        }
        var (v4, v2) = (Run(GroupNormVersion.V4Fused), Run(GroupNormVersion.V2GroupTree));
        Assert.True(RelError(v4[0], want) < 1e-6, $"y: {RelError(v4[0], want)}");
        for (int i = 0; i < v2[1].Length; i++) Assert.True(Math.Abs(v4[1][i] - v2[1][i]) <= 1e-6f * (1 + Math.Abs(v2[1][i])), $"statistic {i}: v4 {v4[1][i]}, v2 {v2[1][i]}");
    }

    /// <summary>GroupNorm's v2 channel sums and v3 and v5 fused backwards with 64-thread groups agree with v1 (which kd
    /// check compares with finite differences) on every output of the backward; v5 also with 256-thread groups at 18
    /// channels per group, whose rows take three trees (8, 8 and 2 channels of 4 terms).</summary>
    [Theory]
    [InlineData(GroupNormVersion.V2GroupTree, 8, 77, 4)]
    [InlineData(GroupNormVersion.V3FusedBackward, 8, 77, 4)]
    [InlineData(GroupNormVersion.V5FusedRows, 8, 77, 4)]
    [InlineData(GroupNormVersion.V5FusedRows, 36, 260, 2)]
    public void GroupNormBackwardWithLargeGroupsMatchesV1(GroupNormVersion version, int channels, int hw, int groups)
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var rng = new Random(9);
        var s = new GroupNormShape { N = 3, C = channels, HW = hw, Groups = groups, ScaleShift = 1, Silu = 1, Eps = 1e-5f };
        int len = s.N * s.C * s.HW;
        float[] R(int n) => Uniform(rng, n).Select(v => (float)v).ToArray();
        using var x = acc.Allocate1D(R(len));
        using var gamma = acc.Allocate1D(R(s.C));
        using var beta = acc.Allocate1D(R(s.C));
        using var ss = acc.Allocate1D(R(s.N * 2 * s.C));
        using var g = acc.Allocate1D(R(len));
        using var stats = acc.Allocate1D<float>(2 * s.N * s.Groups);
        using var y = acc.Allocate1D<float>(len);
        GroupNorm.Forward(acc, s, x.View, gamma.View, beta.View, ss.View, stats.View, y.View, GroupNormVersion.V2GroupTree);
        float[][] Run(GroupNormVersion v)
        {
            using var sums = acc.Allocate1D(Enumerable.Repeat(float.NaN, 2 * s.N * s.C).ToArray());
            using var dss = acc.Allocate1D(Enumerable.Repeat(float.NaN, s.N * 2 * s.C).ToArray());
            using var dx = acc.Allocate1D(Enumerable.Repeat(float.NaN, len).ToArray());
            GroupNorm.Backward(acc, s, x.View, gamma.View, beta.View, ss.View, stats.View, g.View, sums.View, dss.View, dx.View, v);
            return [sums.GetAsArray1D(), dss.GetAsArray1D(), dx.GetAsArray1D()];
        }
        var (v1, v2) = (Run(GroupNormVersion.V1PerGroup), Run(version));
        for (int part = 0; part < 3; part++)
            for (int i = 0; i < v1[part].Length; i++)
                Assert.True(Math.Abs(v1[part][i] - v2[part][i]) <= 1e-4 * (1 + Math.Abs(v1[part][i])), $"output {part}, element {i}: v1 {v1[part][i]}, v{(int)version} {v2[part][i]}");
    }

    /// <summary>Attention v3 with 64-thread groups at the fmnist models' 49 positions: its forward against the float64
    /// reference and its backward against v1's (which kd check compares with finite differences).</summary>
    [Fact]
    public void AttentionV3WithLargeGroupsMatchesV1()
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        var rng = new Random(11);
        var s = new AttentionShape { N = 2, C = 16, T = 49, Heads = 2, NewOrder = 1 };
        double[] R(int len) => Uniform(rng, len);
        var (qkv, da) = (R(s.N * 3 * s.C * s.T), R(s.N * s.C * s.T));
        using var dq = acc.Allocate1D(qkv.Select(v => (float)v).ToArray());
        using var dda = acc.Allocate1D(da.Select(v => (float)v).ToArray());
        int tt = s.Batch * s.T * s.T;
        using var p3 = acc.Allocate1D<float>(tt);
        using var a3 = acc.Allocate1D(Enumerable.Repeat(float.NaN, s.N * s.C * s.T).ToArray());
        using var g3 = acc.Allocate1D(Enumerable.Repeat(float.NaN, qkv.Length).ToArray());
        Attention.SharedForward(acc, s, dq.View, p3.View, a3.View);
        Attention.SharedBackward(acc, s, dq.View, p3.View, dda.View, g3.View);
        using var p1 = acc.Allocate1D<float>(tt);
        using var a1 = acc.Allocate1D<float>(s.N * s.C * s.T);
        using var scratch = acc.Allocate1D<float>(tt);
        using var g1 = acc.Allocate1D<float>(qkv.Length);
        Attention.Forward(acc, s, dq.View, p1.View, a1.View, Gemm.At(acc, GemmVersion.V3Rows));
        Attention.Backward(acc, s, dq.View, p1.View, dda.View, scratch.View, g1.View, Gemm.At(acc, GemmVersion.V3Rows));
        Assert.True(RelError(a3.GetAsArray1D(), Attention.Reference.Forward(qkv, s)) < 1e-5, "forward");
        // adm64's 16x16 attention (9 heads of 64 channels over 256 positions) does not fit v3: kd bench leaves it out.
        Assert.True(Attention.Runs(s, AttentionVersion.V3SharedHead));
        Assert.False(Attention.Runs(new AttentionShape { N = 1, C = 576, T = 256, Heads = 9, NewOrder = 1 }, AttentionVersion.V3SharedHead));
        Assert.True(RelError(g3.GetAsArray1D(), g1.GetAsArray1D().Select(v => (double)v).ToArray()) < 1e-5, "backward against v1");
    }

    /// <summary>The register-tiled conv versions with 256-thread groups (a GPU's launch shape): past one tile, stride 2,
    /// the weight gradient whole and split in 5 slices of k.</summary>
    [Theory]
    [InlineData(ConvVersion.V5RegisterTiles)]
    [InlineData(ConvVersion.V8Hoisted)]
    [InlineData(ConvVersion.V9Hoisted8)]
    [InlineData(ConvVersion.V10Vector)]
    [InlineData(ConvVersion.V11Vector4)]
    public void ConvWithSixteenBySixteenGroupsMatchesTheReference(ConvVersion version)
        => ConvPassesMatchTheReference(8, [ConvGeometry.Create(2, 5, 9, 10, 70, 3, 1, 1), ConvGeometry.Create(1, 66, 7, 6, 3, 3, 2, 1), ConvGeometry.Create(1, 20, 6, 5, 130, 3, 1, 1)],
            (acc, g, pass, x, w, b, dy, o, slices) =>
            {
                using var scratch = slices > 1 ? acc.Allocate1D<float>((long)slices * g.Cout * g.Cin * g.R * g.R) : null;
                Conv2d.Run(acc, pass, g, x, w, dy, b, pass == ConvPass.Forward, o, version, scratch?.View ?? default);
            });

    [Theory]
    [InlineData(GemmVersion.V4Blocked)]
    [InlineData(GemmVersion.V6Blocked8)]
    [InlineData(GemmVersion.V7Vector)]
    [InlineData(GemmVersion.V8Vector4)]
    public void GemmWithSixteenBySixteenGroupsMatchesTheReference(GemmVersion version)
    {
        using var cpu = new GpuShaped();
        var acc = cpu.Acc;
        Assert.Equal(256, acc.MaxNumThreadsPerGroup);
        var rng = new Random(7);
        // Past one tile (64 for v4, 128 for v6 and v7) with ragged edges, and a transposed pair over one tile's width.
        foreach (var (m, n, k, ta, tb) in new[] { (70, 67, 33, 0, 0), (19, 130, 9, 1, 1), (140, 135, 17, 1, 0), (131, 20, 12, 0, 1) })
        {
            var s = new GemmShape { Batch = 2, M = m, N = n, K = k, TransA = ta, TransB = tb, StrideA = m * k, StrideB = k * n, StrideC = m * n, Alpha = 0.5f, Beta = -1.5f };
            double[] R(int len) => Uniform(rng, len);
            var (a, b, c) = (R(2 * m * k), R(2 * k * n), R(2 * m * n));
            using var da = acc.Allocate1D(a.Select(v => (float)v).ToArray());
            using var db = acc.Allocate1D(b.Select(v => (float)v).ToArray());
            using var dc = acc.Allocate1D(c.Select(v => (float)v).ToArray());
            Gemm.Run(acc, da.View, db.View, dc.View, s, version);
            var got = dc.GetAsArray1D();
            var want = Gemm.Reference.Run(a, b, c, s);
            double err = RelError(got, want);
            Assert.True(err < 1e-5, $"{m}x{n}x{k} (trans {ta}{tb}): relative error {err:E2}");
        }
    }
}
