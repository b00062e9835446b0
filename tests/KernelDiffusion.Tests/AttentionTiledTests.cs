using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelDiffusion.Kernels;

namespace KernelDiffusion.Tests;

/// <summary>Attention v4 at the tile sizes GPUs get. kd check runs v4 on the CPU accelerator's 2-thread groups (8 x 4
/// tiles); here a CPU device of 128-thread groups gives it GPU-sized tiles (64 queries x 32 keys) at ragged heads: 70
/// positions (a partial query and key tile), 24 or 32 channels (24 padded to a whole column chunk of 32).</summary>
public sealed class AttentionTiledTests
{
    /// <summary>At 48 KB (what the CPU accelerator and OpenCL get): 16 x 8 forward tiles, 8 x 8 backward ones at 24-channel
    /// heads. At 100 KB (CUDA raises v4's limit: SharedMemoryLimit) every pass takes 16 x 8 tiles, at 32-channel heads as
    /// fmnist_unet's, whose backward kernels then use 49 and 57 KB. v6 and v7 run v4's key side storing dS, and dQ (v7:
    /// and dK) by GEMM; v7's key side, without dK's accumulators, takes 8 x 8 tiles at 48 KB as v4's does.</summary>
    [Theory]
    [InlineData(48, null, 8, 4)]
    [InlineData(64, 100 * 1024, 16, 4)]
    [InlineData(64, 100 * 1024, 16, 6)]
    [InlineData(48, null, 8, 7)]
    [InlineData(64, 100 * 1024, 16, 7)]
    public void TiledMatchesTheReferenceAndV1AtGpuTiles(int c, int? limitBytes, int backwardTY, int version)
    {
        bool scores = version >= 6;
        using var context = Context.Create(b => b.CPU(new CPUDevice(32, 4, 1)).EnableAlgorithms());
        using var acc = context.CreateCPUAccelerator(0);
        var s = new AttentionShape { N = 2, C = c, T = 70, Heads = 2, NewOrder = 1 };
        (int, int) Shape(int pass) => Attention.Tiles(acc, s, pass, limitBytes) is { } f ? (f.TY, f.TX) : (0, 0);
        Assert.Equal((16, 8), Shape(0));
        Assert.Equal((backwardTY, 8), Shape(1));
        Assert.Equal((backwardTY, 8), Shape(version == 7 ? 3 : 2));   // v7's key side keeps no dK (pass 3)

        var rng = new Random(11);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        int qkvLength = s.N * 3 * s.C * s.T, aLength = s.N * s.C * s.T, rows = s.Batch * s.T;
        var qkvHost = Random(qkvLength);
        var daHost = Random(aLength);
        MemoryBuffer1D<float, Stride1D.Dense> Poisoned(int n) => acc.Allocate1D(Enumerable.Repeat(float.NaN, n).ToArray());
        using var qkv = acc.Allocate1D(qkvHost);
        using var da = acc.Allocate1D(daHost);
        using MemoryBuffer1D<float, Stride1D.Dense> a = Poisoned(aLength), lse = Poisoned(rows), delta = Poisoned(rows), dqkv = Poisoned(qkvLength);

        long Launched(string kernel) => KernelCache.LaunchesByKernel().GetValueOrDefault(kernel);
        string v = "v4", keyVersion = scores ? $"v{version}" : v;
        long forward16x8 = Launched($"attention.{v}.forward16x8"), keySide16x8 = Launched($"attention.{keyVersion}.key_value_grad16x8");
        using var ds = Poisoned(rows * s.T);
        Attention.TiledForward(acc, s, qkv.View, a.View, lse.View, limitBytes);
        if (scores) Attention.TiledScoresBackward(acc, s, qkv.View, a.View, lse.View, da.View, delta.View, ds.View, dqkv.View, limitBytes, keyGradByGemm: version == 7);
        else Attention.TiledBackward(acc, s, qkv.View, a.View, lse.View, da.View, delta.View, dqkv.View, limitBytes);
        acc.Synchronize();
        // 16 x 8 tiles run the kernels built with that shape fixed at compile time (Tiles16x8); other shapes the general ones.
        Assert.Equal(1, Launched($"attention.{v}.forward16x8") - forward16x8);
        Assert.Equal(backwardTY == 16 ? 1 : 0, Launched($"attention.{keyVersion}.key_value_grad16x8") - keySide16x8);
        var want = Attention.Reference.Forward(qkvHost.Select(x => (double)x).ToArray(), s);
        AssertClose(want, a.GetAsArray1D(), 1e-5, "forward");

        // The backward against v1's (GEMMs and a softmax; kd check holds it to finite differences).
        using MemoryBuffer1D<float, Stride1D.Dense> p = Poisoned(rows * s.T), dp = Poisoned(rows * s.T), a1 = Poisoned(aLength), dqkv1 = Poisoned(qkvLength);
        Attention.Forward(acc, s, qkv.View, p.View, a1.View);
        Attention.Backward(acc, s, qkv.View, p.View, da.View, dp.View, dqkv1.View);
        acc.Synchronize();
        AssertClose(dqkv1.GetAsArray1D().Select(x => (double)x).ToArray(), dqkv.GetAsArray1D(), 1e-4, "backward");
    }

    /// <summary>Runs <paramref name="test"/> on a CPU accelerator of <paramref name="warpSize"/>-lane warps,
    /// <paramref name="warps"/> a group, with a buffer of <paramref name="floats"/> floats.</summary>
    static void OnCpuDevice(int warpSize, int warps, int floats, Action<Accelerator, ArrayView<float>> test)
    {
        using var context = Context.Create(b => b.CPU(new CPUDevice(warpSize, warps, 1)).EnableAlgorithms());
        using var acc = context.CreateCPUAccelerator(0);
        using var buffer = acc.Allocate1D<float>(floats);
        test(acc, buffer.View);
    }

    /// <summary>v8 (warp rows) refuses, naming why, devices without 32-lane warps in 128-thread groups (kd's CPU device
    /// has 2-thread groups: kd check runs v8 on a CPU device of 32-lane warps instead), heads past 64 channels, and a
    /// shared-memory limit below its key side's; attention=auto does not try it where it cannot run.</summary>
    [Fact]
    public void WarpRowsRefusesWhatItCannotRun()
    {
        var s = new AttentionShape { N = 1, C = 64, T = 9, Heads = 2, NewOrder = 1 };
        OnCpuDevice(2, 1, 3 * s.C * s.T, (acc, buffer) =>
        {
            Assert.False(Attention.WarpRowsRun(acc));
            Assert.False(Attention.Runs(acc, s, AttentionVersion.V8WarpRows));
            var e = Assert.Throws<VersionNotApplicableException>(() => Attention.WarpRowsForward(acc, s, buffer, buffer, buffer));
            Assert.Contains("32-lane warps", e.Message);
        });
        OnCpuDevice(32, 4, 3 * 130 * s.T, (acc, buffer) =>
        {
            Assert.True(Attention.Runs(acc, s, AttentionVersion.V8WarpRows));
            var wide = s with { C = 130 };
            Assert.False(Attention.Runs(wide, AttentionVersion.V8WarpRows));
            Assert.Contains("up to 64 channels", Assert.Throws<VersionNotApplicableException>(() => Attention.WarpRowsForward(acc, wide, buffer, buffer, buffer)).Message);
            // 64-channel heads: 61 KB in the forward (75 in the key side), past the 48 KB the CPU accelerator is held to
            // unless told otherwise (32-channel heads take 37 and 43 KB: kd check runs them through the ops at that limit).
            Assert.Contains("bytes of shared memory", Assert.Throws<VersionNotApplicableException>(
                () => Attention.WarpRowsForward(acc, s with { Heads = 1 }, buffer, buffer, buffer)).Message);
        });
    }

    /// <summary>v11 (lean warp rows) exists to fit four groups a multiprocessor at 64-channel heads, where v8's forward
    /// fits three and its key side two: each of its passes takes at most 56 KB there (an H100 or H200 has 228 KB a
    /// multiprocessor and reserves 1 KB a group), v8's key side more. Its refusals name v11 (v12's backward v12), not
    /// v8; at 32-channel heads it runs within the CPU accelerator's 48 KB.</summary>
    [Fact]
    public void LeanWarpRowsFitsFourGroupsAndNamesItself()
    {
        const int fourGroups = 56 * 1024;
        Assert.InRange(Attention.LeanSharedFloats(64, 0) * sizeof(float), 1, fourGroups);
        Assert.InRange(Attention.LeanSharedFloats(64, 1) * sizeof(float), 1, fourGroups);
        Assert.True(Attention.WarpRowsSharedFloats(64, 1) * sizeof(float) > fourGroups);
        // v11 takes less than v8 in both passes at both padded widths, so it runs wherever v8 does (Choose never needs v8).
        foreach (int cp in new[] { 32, 64 })
            foreach (int pass in new[] { 0, 1 })
                Assert.True(Attention.LeanSharedFloats(cp, pass) < Attention.WarpRowsSharedFloats(cp, pass), $"{cp} channels, pass {pass}");
        var s = new AttentionShape { N = 1, C = 64, T = 9, Heads = 2, NewOrder = 1 };
        OnCpuDevice(2, 1, 3 * s.C * s.T, (acc, buffer) =>
        {
            Assert.False(Attention.Runs(acc, s, AttentionVersion.V11WarpRowsLean));
            Assert.Contains("attention v11 needs 32-lane warps", Assert.Throws<VersionNotApplicableException>(
                () => Attention.WarpRowsForward(acc, s, buffer, buffer, buffer, version: AttentionVersion.V11WarpRowsLean)).Message);
            var v = buffer;
            Assert.Contains("attention v12 needs 32-lane warps", Assert.Throws<VersionNotApplicableException>(
                () => Attention.WarpRowsBackward(acc, s, v, v, v, v, v, v, v, version: AttentionVersion.V12WarpRowsLeanQueryGrad)).Message);
        });
        OnCpuDevice(32, 4, 3 * s.C * s.T, (acc, buffer) =>
        {
            Assert.True(Attention.Runs(acc, s, AttentionVersion.V11WarpRowsLean));
            Assert.True(Attention.Runs(acc, s, AttentionVersion.V12WarpRowsLeanQueryGrad));
            var wide = s with { Heads = 1 };   // 52.5 KB in the forward: past the 48 KB held here
            Assert.False(Attention.Runs(acc, wide, AttentionVersion.V11WarpRowsLean));
            Assert.Contains("attention v11's forward takes", Assert.Throws<VersionNotApplicableException>(
                () => Attention.WarpRowsForward(acc, wide, buffer, buffer, buffer, version: AttentionVersion.V11WarpRowsLean)).Message);
        });
    }

    /// <summary>v13's forward (3xTF32 on the tensor cores) takes less shared memory than v11's and stays under 48 KB at
    /// 64-channel heads (nothing to raise); it refuses devices without v8's warps by its own name, and attention=auto
    /// never tries it until a GPU has run it.</summary>
    [Fact]
    public void V13ForwardFitsUnder48KbAndStaysOptIn()
    {
        Assert.InRange(Attention.Tf32x3SharedFloats(64) * sizeof(float), 1, 48 * 1024);
        Assert.True(Attention.Tf32x3SharedFloats(64) < Attention.LeanSharedFloats(64, 0));
        Assert.True(Attention.Tf32x3SharedFloats(32) < Attention.LeanSharedFloats(32, 0));
        var s = new AttentionShape { N = 1, C = 64, T = 9, Heads = 2, NewOrder = 1 };
        OnCpuDevice(2, 1, 3 * s.C * s.T, (acc, buffer) =>
        {
            Assert.False(Attention.Runs(acc, s, AttentionVersion.V13Tf32x3Forward));
            Assert.Contains("attention v13 needs 32-lane warps", Assert.Throws<VersionNotApplicableException>(
                () => Attention.WarpRowsForward(acc, s, buffer, buffer, buffer, version: AttentionVersion.V13Tf32x3Forward)).Message);
        });
        OnCpuDevice(32, 4, 1, (acc, buffer) =>
        {
            Assert.True(Attention.Runs(acc, s, AttentionVersion.V13Tf32x3Forward));
            Assert.False(Attention.Tunable(acc, s, AttentionVersion.V13Tf32x3Forward));
            Assert.False(Attention.Tunable(acc, s, AttentionVersion.V14Tf32x3));
            Assert.False(Attention.Tunable(acc, s, AttentionVersion.V15PipelinedTf32x3));
            Assert.True(Attention.Tunable(acc, s, AttentionVersion.V11WarpRowsLean));
        });
    }

    /// <summary>v15's swizzled channel rows (Attention.ColumnAt), which the CPU emulation cannot judge: a run of 4 columns
    /// stays whole and 16-byte aligned (one cp.async of 16 bytes); a warp's fragment entries (lane 4 g + t reads channel
    /// t + 8 k, column 8 j + g: K^T, Q^T, dA^T) fall in 32 different banks for every j and k; and each half-warp's pairs
    /// (channel 8 n + g, columns 8 s + 2t and + 1: V^T, dA^T, Q^T, one 8-byte load) in 32 different banks. The offsets
    /// the kernels read at (FragmentColumn, PairColumn) are where the copies store (ColumnAt).</summary>
    [Fact]
    public void V15ChannelRowsKeepCopiesWholeAndReadsConflictFree()
    {
        for (int c = 0; c < 64; c++)
            for (int x = 0; x < 32; x += 4)
            {
                int at = Attention.ColumnAt(c, x);
                Assert.Equal(0, at % 4);
                for (int q = 1; q < 4; q++) Assert.Equal(at + q, Attention.ColumnAt(c, x + q));
            }
        for (int k = 0; k < 16; k += 8)
            for (int j = 0; j < 4; j++)
            {
                var banks = new HashSet<int>();
                for (int lane = 0; lane < 32; lane++)
                {
                    int g = lane >> 2, t = lane & 3, at = Attention.ColumnAt(t + k, 8 * j + g);
                    Assert.Equal((t + k) * 32 + g + Attention.FragmentColumn(j, t), at);
                    banks.Add(at % 32);
                }
                Assert.Equal(32, banks.Count);
            }
        for (int n = 0; n < 8; n++)
            for (int s = 0; s < 4; s++)
                for (int half = 0; half < 2; half++)
                {
                    var banks = new HashSet<int>();
                    for (int lane = 16 * half; lane < 16 * half + 16; lane++)
                    {
                        int g = lane >> 2, t = lane & 3, at = Attention.ColumnAt(8 * n + g, 8 * s + 2 * t);
                        Assert.Equal((8 * n + g) * 32 + 2 * t + Attention.PairColumn(s, g), at);
                        Assert.Equal(at + 1, Attention.ColumnAt(8 * n + g, 8 * s + 2 * t + 1));
                        banks.Add(at % 32);
                        banks.Add((at + 1) % 32);
                    }
                    Assert.Equal(32, banks.Count);
                }
    }

    /// <summary>The analytic float64 gradient kd check holds v4's wide heads to, against central differences of the
    /// float64 forward, in both head orders (3 heads of 5 channels, 6 positions).</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    public void ReferenceBackwardMatchesFiniteDifferences(int newOrder)
    {
        var s = new AttentionShape { N = 2, C = 15, T = 6, Heads = 3, NewOrder = newOrder };
        var rng = new Random(7 + newOrder);
        var qkv = Enumerable.Range(0, s.N * 3 * s.C * s.T).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var da = Enumerable.Range(0, s.N * s.C * s.T).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var got = Attention.Reference.Backward(qkv, da, s);
        double L() => Attention.Reference.Forward(qkv, s).Select((a, i) => a * da[i]).Sum();
        const double h = 1e-6;
        double worst = 0, scale = got.Max(Math.Abs);
        for (int e = 0; e < qkv.Length; e++)
        {
            double keep = qkv[e];
            qkv[e] = keep + h;
            double up = L();
            qkv[e] = keep - h;
            double down = L();
            qkv[e] = keep;
            worst = Math.Max(worst, Math.Abs((up - down) / (2 * h) - got[e]) / scale);
        }
        Assert.True(worst < 1e-7, $"largest difference {worst:E2} of the largest gradient");
    }

    /// <summary>Off CUDA the limit stays 48 KB and kernels load unchanged; on every accelerator the CUDA kernel behind a
    /// launcher is found the way SharedMemoryLimit.Raise finds it (ILGPU's KernelUtil, through the launcher's closure).</summary>
    [Fact]
    public void SharedMemoryLimitIs48KBOffCudaAndFindsTheKernelBehindALauncher()
    {
        using var context = Context.Create(b => b.CPU().EnableAlgorithms());
        using var acc = context.CreateCPUAccelerator(0);
        Assert.Equal(48 * 1024, SharedMemoryLimit.MaxBytes(acc));
        Action<Index1D, ArrayView<float>> body = (i, v) => v[i] = i;
        var launcher = acc.LoadAutoGroupedStreamKernel(body);
        Assert.Same(launcher, SharedMemoryLimit.Raise(acc, launcher, "test"));
        Action<ArrayView<float>, int> grouped = GroupedFill;
        var streamLauncher = acc.LoadStreamKernel(grouped, LaunchBoundsAttribute.Of(grouped, acc.MaxNumThreadsPerGroup));
        Assert.True(streamLauncher.TryGetKernel(out var kernel));
        Assert.IsAssignableFrom<ILGPU.Runtime.Kernel>(kernel);
    }

    static void GroupedFill(ArrayView<float> v, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) v[i] = i;
    }

    static void AssertClose(double[] want, float[] got, double tolerance, string what)
    {
        double scale = want.Max(Math.Abs), worst = 0;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]), $"{what}: element {i} is NaN (never written)");
            worst = Math.Max(worst, Math.Abs(got[i] - want[i]) / scale);
        }
        Assert.True(worst <= tolerance, $"{what}: largest error {worst:E2} of the largest magnitude, tolerance {tolerance:E0}");
    }
}
