using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelDiffusion.Checks;
using KernelDiffusion.Kernels;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>The tf32 tensor-core path (GEMM v5 and v16-v18, conv v6 and v7). Its numbers are checked by kd check's
/// gemm.v5, gemm.v16-v18 and conv2d.v6 cases (KernelCheckTests runs them, emulated on a CPU device of 32-lane warps);
/// these cover the rounding and truncation, the refusal where it cannot run, and what ptxas makes of its inline PTX.</summary>
[Collection("device")]
public sealed class TensorCoreTests(DeviceFixture fx, ITestOutputHelper output)
{
    static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    [Fact]
    public void RoundTf32RoundsToNearestTiesAwayFromZero()
    {
        // 1 + 2^-11 lies halfway between the tf32 neighbours 1 and 1 + 2^-10: ties go away from zero.
        Assert.Equal(1 + MathF.Pow(2, -10), TensorCore.RoundTf32(1 + MathF.Pow(2, -11)));
        Assert.Equal(-(1 + MathF.Pow(2, -10)), TensorCore.RoundTf32(-(1 + MathF.Pow(2, -11))));
        Assert.Equal(1f, TensorCore.RoundTf32(F(0x3F800FFF)));                  // just below the tie
        Assert.Equal(F(0x3F802000), TensorCore.RoundTf32(F(0x3F801001)));       // just above it
        Assert.Equal(float.PositiveInfinity, TensorCore.RoundTf32(float.MaxValue));   // past the largest tf32: overflow
        Assert.Equal(float.NegativeInfinity, TensorCore.RoundTf32(float.NegativeInfinity));
        Assert.True(float.IsNaN(TensorCore.RoundTf32(F(0x7F800001))));          // a NaN with only low bits stays a NaN
        // Within half a tf32 unit in the last place (2^-11 relative, at most).
        ForRandomFloats(3, TensorCore.RoundTf32, (x, r) => Math.Abs(r - (double)x) <= Math.Abs((double)x) * Math.Pow(2, -11));
    }

    /// <summary>10,000 seeded floats of magnitudes 2^-20 to 2^20 through <paramref name="f"/>: each result has its 13
    /// low mantissa bits clear and satisfies <paramref name="ok"/>.</summary>
    static void ForRandomFloats(int seed, Func<float, float> f, Func<float, float, bool> ok)
    {
        var rng = new Random(seed);
        for (int i = 0; i < 10000; i++)
        {
            float x = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-20, 20)));
            float r = f(x);
            Assert.Equal(0u, BitConverter.SingleToUInt32Bits(r) & 0x1FFFu);
            Assert.True(ok(x, r), $"{x:R} -> {r:R}");
        }
    }

    [Fact]
    public void TruncateTf32KeepsTheTop19BitsAsTheTensorCoresRead()
    {
        Assert.Equal(1f, TensorCore.TruncateTf32(F(0x3F801FFF)));               // just below 1 + 2^-10: down, not to nearest
        Assert.Equal(-(1 + MathF.Pow(2, -10)), TensorCore.TruncateTf32(-(1 + MathF.Pow(2, -10) + MathF.Pow(2, -12))));
        Assert.Equal(F(0x7F7FE000), TensorCore.TruncateTf32(float.MaxValue));   // the largest tf32: no overflow
        Assert.Equal(float.NegativeInfinity, TensorCore.TruncateTf32(float.NegativeInfinity));
        Assert.True(float.IsNaN(TensorCore.TruncateTf32(F(0x7F800001))));          // a NaN with only low bits stays a NaN
        // Toward zero, by less than a tf32 unit in the last place (2^-10 relative).
        ForRandomFloats(5, TensorCore.TruncateTf32, (x, r) => Math.Abs(r) <= Math.Abs(x) && Math.Abs(r - (double)x) < Math.Abs((double)x) * Math.Pow(2, -10));
    }

    [Fact]
    public void V5RefusesADeviceWithoutWholeWarps()
    {
        var acc = fx.Device.Accelerator;
        Assert.False(TensorCore.Runs(acc));
        Assert.False(Gemm.Runs(acc, GemmVersion.V5Tf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V16PipelinedTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V17AsyncTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V18PackedTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V19VectorTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V20LdmatrixTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V21Tf32x3));
        Assert.False(Gemm.Runs(acc, GemmVersion.V22BulkTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V23PlainCopyTf32));
        Assert.False(Gemm.Runs(acc, GemmVersion.V24BulkK32Tf32));
        Assert.True(Gemm.Runs(acc, GemmVersion.V4Blocked));
        // v21's results are fp32's, but it stays opt-in until a GPU has timed it.
        Assert.True(!Gemm.IsTf32(GemmVersion.V21Tf32x3) && Gemm.UsesTensorCores(GemmVersion.V21Tf32x3) && !Gemm.Tunable(acc, GemmVersion.V21Tf32x3));
        // Never tuned to, on any device: their results are tf32's.
        Assert.All(new[] { GemmVersion.V5Tf32, GemmVersion.V16PipelinedTf32, GemmVersion.V17AsyncTf32, GemmVersion.V18PackedTf32, GemmVersion.V19VectorTf32, GemmVersion.V20LdmatrixTf32,
                GemmVersion.V22BulkTf32, GemmVersion.V23PlainCopyTf32, GemmVersion.V24BulkK32Tf32 },
            v => Assert.True(Gemm.IsTf32(v) && !Gemm.Tunable(acc, v)));
        Assert.False(Conv2d.Runs(acc, ConvVersion.V7HoistedTf32));
        Assert.True(Conv2d.Runs(acc, ConvVersion.V8Hoisted));
        using var a = acc.Allocate1D<float>(4);
        var s = new GemmShape { Batch = 1, M = 2, N = 2, K = 2, Alpha = 1 };
        var e = Assert.Throws<VersionNotApplicableException>(() => Gemm.Run(acc, a.View, a.View, a.View, s, GemmVersion.V5Tf32));
        Assert.Contains("32-lane warps", e.Message);
        foreach (var v in new[] { GemmVersion.V16PipelinedTf32, GemmVersion.V17AsyncTf32, GemmVersion.V18PackedTf32, GemmVersion.V19VectorTf32, GemmVersion.V20LdmatrixTf32, GemmVersion.V21Tf32x3,
                     GemmVersion.V22BulkTf32, GemmVersion.V23PlainCopyTf32, GemmVersion.V24BulkK32Tf32 })
        {
            e = Assert.Throws<VersionNotApplicableException>(() => Gemm.Run(acc, a.View, a.View, a.View, s, v));
            Assert.Contains("groups of 256 threads", e.Message);
            Assert.Contains($"gemm v{(int)v}", e.Message);
        }
        var g = ConvGeometry.Create(1, 1, 1, 1, 1, 1, 1, 0);
        e = Assert.Throws<VersionNotApplicableException>(() => Conv2d.Run(acc, ConvPass.Forward, g, a.View, a.View, a.View, a.View, false, a.View, ConvVersion.V6Tf32));
        Assert.Contains("conv2d v6", e.Message);
    }

    /// <summary>kd bench's tf32 ceiling kernel computes what its operands say (emulated on a CPU device of 32-lane
    /// warps): lane l holds (l + 1) / 64 in every register, so A[r][k] is lane (r % 8) * 4 + k % 4's value and B[k][n]
    /// lane n * 4 + k % 4's; each of the 8 mma tiles accumulates iterations x A B, and each lane stores the sum of its
    /// 32 accumulators.</summary>
    [Fact]
    public void PeakMmaKernelComputesItsChains()
    {
        using var context = Context.Create(b => b.CPU(new CPUDevice(32, 4, 1)).EnableAlgorithms());
        using var acc = context.CreateCPUAccelerator(0);
        var shape = new PeakShape(128, 128, 3);
        using var sink = acc.Allocate1D(Enumerable.Repeat(float.NaN, 128).ToArray());
        PeakRate.RunMma(acc, sink.View, shape);
        var got = sink.GetAsArray1D();
        double V(int lane) => PeakRate.MmaOperand(lane);
        double D(int r, int n) => Enumerable.Range(0, 8).Sum(k => V((r % 8) * 4 + k % 4) * V(n * 4 + k % 4)) * shape.Iterations;
        for (int thread = 0; thread < 128; thread++)
        {
            int lane = thread % 32, g = lane >> 2, t = lane & 3;
            double want = 8 * (D(g, 2 * t) + D(g, 2 * t + 1) + D(g + 8, 2 * t) + D(g + 8, 2 * t + 1));
            Assert.True(Math.Abs(got[thread] - want) <= 1e-5 * want, $"thread {thread}: {got[thread]} against {want}");
        }
        Assert.Equal(4 * 3 * 8 * 2.0 * 16 * 8 * 8, PeakRate.MmaFlops(shape));
    }

    [Fact]
    public void ATf32CostIsFlooredAtTheTensorRateWhereMeasured()
    {
        var cost = new KernelCost(2e12, 1e6);
        Assert.Equal(2000, new Benchmarks.Peak(1000, 1).FloorMs(cost with { Tf32 = true }), 6);       // not measured: fp32 rate
        Assert.Equal(200, new Benchmarks.Peak(1000, 1, 10).FloorMs(cost with { Tf32 = true }), 6);
        Assert.Equal(2000, new Benchmarks.Peak(1000, 1, 10).FloorMs(cost), 6);
        Assert.True((cost with { Tf32 = true } + cost with { Tf32 = true }).Tf32);
        // 3xTF32 (GEMM v21): three tf32 products a multiply-add; as fp32 where the tensor rate was not measured.
        var x3 = cost with { Tf32 = true, Tf32Passes = 3 };
        Assert.Equal(600, new Benchmarks.Peak(1000, 1, 10).FloorMs(x3), 6);
        Assert.Equal(2000, new Benchmarks.Peak(1000, 1).FloorMs(x3), 6);
        Assert.Equal(3, (x3 + cost with { Tf32 = true }).Tf32Passes);
        Assert.True(Runtime.KernelVersions.IsTf32x3(GemmVersion.V21Tf32x3) && !Runtime.KernelVersions.IsTf32(GemmVersion.V21Tf32x3));
    }

    /// <summary>The accumulators stay in PTX registers across the k loop (not in local memory, where
    /// CudaAsm.EmitRef's operands would put them), and every mma per step is there: WarpTile.Multiply's eight, inlined
    /// once, or WarpTile64's sixteen, twice per stage of 16 values of k (GEMM v16).</summary>
    [SkippableTheory]
    [InlineData("Gemm.V5Kernel", 8, 16, 0)]
    [InlineData("Conv2d.V6Kernel", 8, 16, 0)]
    [InlineData("Conv2d.V7Kernel", 8, 16, 0)]
    [InlineData("PeakRate.MmaKernel", 8, 16, 0)]
    // v16 asks for 2 groups of 256 threads a multiprocessor (128 registers): ptxas spills 76 bytes, outside the k
    // loop (scripts/sass-loops.py shows none in it). Its 64 accumulators in local memory would take 256 bytes.
    [InlineData("Gemm.V16Kernel", 32, 128, 128)]
    // v17 and v18 (cp.async staging) fit the same bound spilling at most a few bytes, outside their k loops too.
    [InlineData("Gemm.V17Kernel", 32, 64, 32)]
    [InlineData("Gemm.V18Kernel", 32, 64, 32)]
    public void InlinePtxAssemblesWithTheAccumulatorsInRegisters(string kernel, int mmasPerStage, int maxFrame, int maxSpill)
    {
        var r = OfflineCompile.CompileAll("ptx", filter: kernel).Single();
        Assert.True(r.Ok, r.Message);
        int mmas = r.Code!.Split('\n').Count(l => l.Contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
        Assert.Equal(mmasPerStage, mmas);
        var ptxas = Ptxas.Find();
        Skip.If(ptxas == null, $"ptxas not found: {Ptxas.HowToGet}");
        var a = Ptxas.Assemble(ptxas!, r.Code, r.Kernel);
        output.WriteLine(a.Message);
        Assert.True(a.Ok && a.Parsed, a.Message);
        // The epilogue reads the accumulators out one at a time through one 4-byte local each (ILGPU gives every
        // inline-assembly output a local); 320 bytes was v5's frame when the mma took them through EmitRef.
        Assert.True(a.StackFrameBytes <= maxFrame, $"stack frame {a.StackFrameBytes} B: the accumulators went to local memory");
        Assert.True(a.SpillStoreBytes <= maxSpill, a.Message);
    }

    /// <summary>GEMM v20-v24's entries compiled for PTX once for the structure tests below (each compile of these kernels
    /// takes seconds on 2 cores), and other kernels as asked.</summary>
    static readonly Lazy<IReadOnlyList<(string Kernel, bool Ok, string Message, string? Code)>> GemmV2x =
        new(() => OfflineCompile.CompileAll("ptx", filter: "Gemm.V2"));

    /// <summary>Attention v13-v15's tensor-core kernels, compiled once for the tests below.</summary>
    static readonly Lazy<IReadOnlyList<(string Kernel, bool Ok, string Message, string? Code)>> AttentionTf32x3 =
        new(() => OfflineCompile.CompileAll("ptx", filter: "Attention.Tf32x3"));

    static List<(string Kernel, bool Ok, string Message, string? Code)> Compiled(string filter)
        => (filter.StartsWith("Gemm.V2", StringComparison.Ordinal) ? GemmV2x.Value.Where(r => r.Kernel.StartsWith(filter, StringComparison.Ordinal))
            : filter.StartsWith("Attention.Tf32x3", StringComparison.Ordinal) ? AttentionTf32x3.Value.Where(r => r.Kernel.StartsWith(filter, StringComparison.Ordinal))
            : OfflineCompile.CompileAll("ptx", filter: filter)).ToList();

    /// <summary>The 3xTF32 kernels take every product as three mma: each A tile is split (ksh0..3) before its 12 mma (three
    /// for each of tf32's four), and B is split once (kbh0..7) for every <paramref name="aTilesPerBSplit"/> A tiles: GEMM
    /// v21's four A tiles a step, attention v13's-v15's one row tile a product. ptxas assembles them within
    /// <paramref name="maxSpill"/> spilled bytes (11.8: v21 0-44, 4 stage-loop spill instructions at most; attention 0-4,
    /// the dK kernels at 168 registers). Counted per split, not per kernel: how often ILGPU writes a loop body out varies
    /// with the code around it.</summary>
    [SkippableTheory]
    [InlineData("Gemm.V21", 4, 4, 64)]
    [InlineData("Attention.Tf32x3", 6, 1, 16)]
    public void Tf32x3KernelsTakeThreeMmaPerProduct(string filter, int kernels, int aTilesPerBSplit, int maxSpill)
    {
        static int Count(string code, string what) => code.Split(what).Length - 1;
        var compiled = Compiled(filter);
        Assert.Equal(kernels, compiled.Count);
        var ptxas = Ptxas.Find();
        foreach (var r in compiled)
        {
            Assert.True(r.Ok, r.Message);
            int bSplits = Count(r.Code!, "add.u32 kbh0,"), aSplits = Count(r.Code!, "add.u32 ksh0,");
            Assert.True(bSplits > 0, r.Kernel);
            Assert.Equal(aTilesPerBSplit * bSplits, aSplits);
            Assert.Equal(12 * aSplits, Count(r.Code!, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
            if (ptxas == null) continue;
            var a = Ptxas.Assemble(ptxas, r.Code!, r.Kernel);
            output.WriteLine($"{r.Kernel}: {a.Message}");
            Assert.True(a.Ok && a.Parsed && a.SpillStoreBytes <= maxSpill, a.Message);
        }
        Skip.If(ptxas == null, $"ptxas not found: {Ptxas.HowToGet}");
    }

    /// <summary>Attention v15's three kernels copy their streamed tiles by cp.async (16-byte copies where the host allows
    /// them, without the zero-fill operand where a tile lies inside, and 4-byte ones) and wait for them (the dK kernel also for all but its newest group: the next Q tile may still
    /// fly while it reads dA); v13's and v14's, which share their bodies, copy nothing (the copies fold away where the
    /// entry's constant says so). v15's forward and dV kernel fit four groups a multiprocessor (the forward under 48 KB with
    /// its static scratch: nothing to raise), its dK kernel three in 228 KB, as v14's.</summary>
    [Fact]
    public void V15CopiesItsTilesByCpAsync()
    {
        var compiled = Compiled("Attention.Tf32x3");
        Assert.Equal(6, compiled.Count);
        foreach (var r in compiled)
        {
            bool v15 = r.Kernel.Contains("Async", StringComparison.Ordinal);
            Assert.True(r.Ok, r.Message);
            Assert.Equal(v15, r.Code!.Contains("cp.async.cg.shared.global [kds], [kd0], 16, %"));
            Assert.Equal(v15, r.Code.Contains("cp.async.cg.shared.global [kds], [kd0], 16; }"));   // inner tiles: no zero-fill
            Assert.Equal(v15, r.Code.Contains("cp.async.ca.shared.global [kds+12], [kd3], 4, %"));
            Assert.Equal(v15, r.Code.Contains("cp.async.wait_all;"));
            Assert.Equal(r.Kernel.EndsWith("AsyncKeyGradKernel", StringComparison.Ordinal), r.Code.Contains("cp.async.wait_group 1;"));
        }
        // Per group: the dynamic shared memory, the 6160 bytes of static scratch ILGPU keeps on CUDA (ptxas -v: the mma
        // emulation's, TensorCore.Scratch) and the 1 KB the driver reserves; 228 KB a multiprocessor (H100, H200).
        const int staticBytes = 6160, reserved = 1024, perSm = 228 * 1024;
        Assert.InRange(Attention.Tf32x3SharedFloats(64, true) * sizeof(float) + staticBytes, 1, 48 * 1024);
        Assert.True(4 * (Attention.Tf32x3SharedFloats(64, true) * sizeof(float) + staticBytes + reserved) <= perSm);
        Assert.True(4 * (Attention.Tf32x3KeySideFloats(64, false, true) * sizeof(float) + staticBytes + reserved) <= perSm);
        Assert.True(3 * (Attention.Tf32x3KeySideFloats(64, true, true) * sizeof(float) + staticBytes + reserved) <= perSm);
        Assert.True(3 * (Attention.Tf32x3KeySideFloats(64, true) * sizeof(float) + staticBytes + reserved) <= perSm);   // v14's
    }

    /// <summary>GEMM v23's four entries copy inside tiles without the zero-fill operand (which ptxas turns into a
    /// predicate on each LDGSTS) and edge tiles with it; v20's copies all take it.</summary>
    [Fact]
    public void V23CopiesInsideTilesWithoutZeroFill()
    {
        const string plain = "cp.async.cg.shared.global [kds], [kd0], 16; }", filled = "cp.async.cg.shared.global [kds], [kd0], 16, %";
        var v23 = Compiled("Gemm.V23");
        Assert.Equal(4, v23.Count);
        Assert.All(v23, r => Assert.True(r.Ok && r.Code!.Contains(plain) && r.Code.Contains(filled), r.Kernel));
        Assert.All(Compiled("Gemm.V20"), r => Assert.True(r.Ok && !r.Code!.Contains(plain) && r.Code.Contains(filled), r.Kernel));
    }

    /// <summary>GEMM v22's four entries and v24's two are compiled retargeted to sm_90 (PtxTarget, as Gemm.Run loads them
    /// on CUDA) and stage their operands by bulk copies on mbarriers (each entry announces, copies and waits); v20, which
    /// shares their body, stays sm_80 with none of it (the bulk-only code folds away where the entry's constant says so).
    /// ptxas 12 assembles them for sm_90 within <paramref name="maxSpill"/> bytes of spill (12.4: 126-128 registers; v22
    /// none; v24 0-8 bytes at NN and 0-40 at NT by compile context, for ILGPU's PTX of a kernel varies with what its
    /// context compiled before: bench/NOTES.md, GEMM v24).</summary>
    [SkippableTheory]
    [InlineData("Gemm.V22", 4, 0)]
    [InlineData("Gemm.V24", 2, 64)]
    public void BulkVersionsAreRetargetedToSm90AndStageByBulkCopies(string filter, int kernels, int maxSpill)
    {
        static int Count(string code, string what) => code.Split(what).Length - 1;
        var bulk = Compiled(filter);
        Assert.Equal(kernels, bulk.Count);
        foreach (var r in bulk)
        {
            Assert.True(r.Ok, r.Message);
            Assert.Equal("sm_90", Ptxas.TargetOf(r.Code!));
            Assert.True(Count(r.Code!, "mbarrier.init.shared::cta.b64") > 0, r.Kernel);
            Assert.True(Count(r.Code!, "mbarrier.arrive.expect_tx.shared::cta.b64") > 0, r.Kernel);
            Assert.True(Count(r.Code!, "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes") > 0, r.Kernel);
            Assert.True(Count(r.Code!, "mbarrier.try_wait.parity.shared::cta.b64") > 0, r.Kernel);
            // v24's ldmatrix blocks step 16 rows of FragA.RowsPitch32 floats between tiles (the emulation checks the lanes'
            // rows, not these offsets).
            int tile = 4 * 16 * (filter == "Gemm.V24" ? FragA.RowsPitch32 : FragA.RowsPitch);
            if (!r.Kernel.Contains("AT"))   // A transposed: v19's reads, no ldmatrix
                Assert.True(r.Code!.Contains($"[kda+{tile}]") && r.Code.Contains($"[kda+{3 * tile}]"), r.Kernel);
        }
        foreach (var r in filter == "Gemm.V22" ? Compiled("Gemm.V20") : [])
        {
            Assert.True(r.Ok, r.Message);
            Assert.Equal("sm_80", Ptxas.TargetOf(r.Code!));
            Assert.DoesNotContain("mbarrier", r.Code!);
            Assert.DoesNotContain("cp.async.bulk", r.Code!);
        }
        var ptxas = Ptxas.FindSm90();
        Skip.If(ptxas == null, $"no ptxas for sm_90: {Ptxas.HowToGetSm90}");
        foreach (var r in bulk)
        {
            var a = Ptxas.Assemble(ptxas!, r.Code!, r.Kernel);
            output.WriteLine($"{r.Kernel}: {a.Message}");
            Assert.True(a.Ok && a.Parsed && a.SpillStoreBytes <= maxSpill && a.SpillLoadBytes <= maxSpill, a.Message);
        }
    }
}

/// <summary>KD_KERNELS: forcing kernel versions by name for a whole run (how a user opts into the tf32 versions).</summary>
public sealed class KernelVersionNamesTests
{
    [Fact]
    public void ForceReadsFamilyAndVersionNames()
    {
        var v = new Runtime.KernelVersions();
        v.Force(" gemm=v5, conv=v6 ,GroupNorm=v2");
        Assert.Equal(GemmVersion.V5Tf32, v.Gemm);
        Assert.Equal(ConvVersion.V6Tf32, v.Conv);
        Assert.Equal(GroupNormVersion.V2GroupTree, v.GroupNorm);
        Assert.Null(v.Attention);
        Assert.Equal("gemm=v5,conv=v6,groupnorm=v2", v.ToString());
    }

    [Fact]
    public void ParseNamesTheFamilies()
    {
        var parsed = Runtime.KernelVersions.Parse("conv=v3 gemm=v1,conv=v1", "--skip-versions");
        Assert.Equal([("conv", (Enum)ConvVersion.V3Planes), ("gemm", GemmVersion.V1Naive), ("conv", ConvVersion.V1Direct)], parsed);
        Assert.Equal("groupnorm", Runtime.KernelVersions.FamilyOf(typeof(GroupNormVersion)));
        Assert.Contains("--skip-versions", Assert.Throws<Runtime.KdException>(() => Runtime.KernelVersions.Parse("conv=v99", "--skip-versions")).Message);
    }

    [Theory]
    [InlineData("gemm=v25", "no such version (there are v1 (naive), v2 (tiled), v3 (rows), v4 (blocked), v5 (tf32), v6 (blocked8), v7 (vector), v8 (vector4), v9 (cpublocks), v10 (pipelined), v11 (pipelined4), v12 (unrolled), v13 (unrolled4), v14 (padded), v15 (padded4), v16 (pipelinedtf32), v17 (asynctf32), v18 (packedtf32), v19 (vectortf32), v20 (ldmatrixtf32), v21 (tf32x3), v22 (bulktf32), v23 (plaincopytf32), v24 (bulkk32tf32))")]
    [InlineData("gemm=5", "is not family=vN")]
    [InlineData("matmul=v2", "unknown kernel family 'matmul'")]
    [InlineData("conv=v2,gemm", "is not family=vN")]
    public void ABadNameIsRefusedAndChangesNothing(string spec, string message)
    {
        var v = new Runtime.KernelVersions();
        var e = Assert.Throws<Runtime.KdException>(() => v.Force(spec));
        Assert.Contains(message, e.Message);
        Assert.Contains("KD_KERNELS", e.Message);
        Assert.Null(v.Conv);
    }
}
