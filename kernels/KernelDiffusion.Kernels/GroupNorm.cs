using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace KernelDiffusion.Kernels;

/// <summary>Shape and options of a fused GroupNorm over x [N, C, HW]: y = GN(x) gamma + beta, then optionally
/// z = y (1 + scale) + shift with scale = ss[n, c], shift = ss[n, C + c] (use_scale_shift_norm: ss is the emb
/// layer's output [N, 2C]), then optionally SiLU.</summary>
public struct GroupNormShape
{
    public int N, C, HW, Groups, ScaleShift, Silu;
    public float Eps;

    public readonly int PerGroup => C / Groups;
    public readonly int Count => PerGroup * HW;
}

public enum GroupNormVersion { V1PerGroup = 1, V2GroupTree = 2, V3FusedBackward = 3, V4Fused = 4, V5FusedRows = 5 }

/// <summary>A plane's (n, c) normalisation as one multiply-add, z = (x - mean) A + B: gamma, beta and the scale-shift
/// folded together, found once per run of the plane.</summary>
public struct PlaneAffine
{
    public float A, B;

    public static PlaneAffine Of(float rstd, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> ss, GroupNormShape s, int n, int c)
    {
        float a = rstd * gamma[c], b = beta[c];
        if (s.ScaleShift != 0)
        {
            float scale = 1f + ss[n * 2 * s.C + c];
            a *= scale;
            b = b * scale + ss[n * 2 * s.C + s.C + c];
        }
        return new PlaneAffine { A = a, B = b };
    }

    /// <summary>The output for x: z, through SiLU when fused.</summary>
    public readonly float Apply(float x, float mean, GroupNormShape s)
    {
        float z = (x - mean) * A + B;
        return s.Silu != 0 ? z * GroupNorm.Sigmoid(z) : z;
    }
}

/// <summary>GroupNorm with fp32 two-pass statistics (mean, then the mean of squared deviations), fused with
/// scale-shift and SiLU. A group's elements are contiguous in NCHW, so statistics read one run per (n, group).
/// Backward: one pass per (n, c) sums what the parameter gradients need (v1: a thread per (n, c); v2: a group of
/// threads per (n, c)); one elementwise pass gives dx (v3 does both in one kernel per (n, group), its forward is v2's) from
/// dxhat = dy gamma: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), means over the group. v4 is v3 with the
/// forward in one kernel per (n, group) too: one launch each way. v5 is v4 with a backward whose channel sums share
/// their trees: one tree of rows for all of a group's channels and terms, where v3 runs a tree per channel and term.</summary>
public static class GroupNorm
{
    const int MaxGroup = 256;
    /// <summary>v3 keeps a group's per-channel sums in shared memory: at most this many channels per group.</summary>
    public const int MaxChannelsPerGroupV3 = 64;

    // ---- forward ----

    /// <summary>stats[i] = mean, stats[NG + i] = 1/sqrt(var + eps) for i = n * Groups + g.</summary>
    static void StatsV1Kernel(ArrayView<float> x, ArrayView<float> stats, GroupNormShape s)
    {
        int ng = s.N * s.Groups, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < ng; i += stride)
        {
            int o = i * s.Count;
            float sum = 0;
            for (int e = 0; e < s.Count; e++) sum += x[o + e];
            float mean = sum / s.Count, sq = 0;
            for (int e = 0; e < s.Count; e++) { float d = x[o + e] - mean; sq += d * d; }
            stats[i] = mean;
            stats[ng + i] = XMath.Rsqrt(sq / s.Count + s.Eps);
        }
    }

    /// <summary>One group of threads per (n, group), shared-memory trees for both passes (power-of-two groups).</summary>
    static void StatsV2Kernel(ArrayView<float> x, ArrayView<float> stats, GroupNormShape s)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int ng = s.N * s.Groups, tid = Group.IdxX, threads = Group.DimX;   // read once: a runtime call per read on the CPU accelerator
        for (int i = Grid.IdxX; i < ng; i += Grid.DimX)
        {
            int o = i * s.Count;
            float acc = 0;
            for (int e = tid; e < s.Count; e += threads) acc += x[o + e];
            float mean = GroupTree.Sum(sh, acc) / s.Count;
            acc = 0;
            for (int e = tid; e < s.Count; e += threads) { float d = x[o + e] - mean; acc += d * d; }
            float sq = GroupTree.Sum(sh, acc);
            if (tid == 0)
            {
                stats[i] = mean;
                stats[ng + i] = XMath.Rsqrt(sq / s.Count + s.Eps);
            }
        }
    }

    internal static float Sigmoid(float z) => 1f / (1f + XMath.Exp(-z));

    /// <summary>y from x and the statistics, over runs of up to <paramref name="run"/> elements of a plane (n, c): a
    /// run finds its plane's scale and shift once (z = (x - mean) a + b), so the divisions that locate the plane are
    /// per run, not per element. GPUs take runs of 1 (neighbouring threads, neighbouring elements); the CPU
    /// accelerator a plane a run (PlaneRun).</summary>
    static void ApplyKernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> ss,
        ArrayView<float> y, GroupNormShape s, int run)
    {
        int runsPerPlane = (s.HW + run - 1) / run, units = s.N * s.C * runsPerPlane, ng = s.N * s.Groups, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int nc = u / runsPerPlane, e0 = (u - nc * runsPerPlane) * run, n = nc / s.C, c = nc - n * s.C, gi = n * s.Groups + c / s.PerGroup;
            float mean = stats[gi];
            var plane = PlaneAffine.Of(stats[ng + gi], gamma, beta, ss, s, n, c);
            int o = nc * s.HW, end = XMath.Min(e0 + run, s.HW);
            for (int e = e0; e < end; e++) y[o + e] = plane.Apply(x[o + e], mean, s);
        }
    }

    /// <summary>v4's forward in one launch: one group of threads per (n, group) forms the statistics (two passes, as v2)
    /// and then writes the group's outputs, channel by channel (so no element needs a division to find its channel).
    /// x comes from memory once: the group (PerGroup x HW values) is read again twice right after, mostly from cache,
    /// where v1 and v2 read all of x again in a second launch with four divisions per element.</summary>
    static void ForwardV4Kernel(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> ss,
        ArrayView<float> stats, ArrayView<float> y, GroupNormShape s)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int ng = s.N * s.Groups, tid = Group.IdxX, threads = Group.DimX;   // read once: a runtime call per read on the CPU accelerator
        for (int gi = Grid.IdxX; gi < ng; gi += Grid.DimX)
        {
            int first = gi * s.Count;   // a group's elements are contiguous in NCHW
            float acc = 0;
            for (int e = tid; e < s.Count; e += threads) acc += x[first + e];
            float mean = GroupTree.Sum(sh, acc) / s.Count;
            acc = 0;
            for (int e = tid; e < s.Count; e += threads) { float d = x[first + e] - mean; acc += d * d; }
            float rstd = XMath.Rsqrt(GroupTree.Sum(sh, acc) / s.Count + s.Eps);
            if (tid == 0)
            {
                stats[gi] = mean;
                stats[ng + gi] = rstd;
            }
            int n = gi / s.Groups, c0 = (gi - n * s.Groups) * s.PerGroup;
            for (int cc = 0; cc < s.PerGroup; cc++)
            {
                var plane = PlaneAffine.Of(rstd, gamma, beta, ss, s, n, c0 + cc);
                int o = first + cc * s.HW;
                for (int e = tid; e < s.HW; e += threads) y[o + e] = plane.Apply(x[o + e], mean, s);
            }
        }
    }

    /// <summary>The run of ApplyKernel and InputGradKernel: a whole plane on the CPU accelerator, where one thread per
    /// core walks the planes (measured on 2 cores: the N40 C64 28x28 +SiLU forward, statistics included, 14.1-14.8 ms
    /// against 29.8-30.9 with runs of 1; bench/NOTES.md), 1 on GPUs.</summary>
    public static int PlaneRun(Accelerator acc, GroupNormShape s) => Launch.IsCpu(acc) ? s.HW : 1;

    // ---- backward ----

    /// <summary>dz from the output gradient: through SiLU when fused.</summary>
    static float Dz(float g, float z, GroupNormShape s)
    {
        if (s.Silu == 0) return g;
        float sg = Sigmoid(z);
        return g * sg * (1f + z * (1f - sg));
    }

    /// <summary>Per (n, c): sums[0] = sum dy xhat (-> dgamma), sums[1] = sum dy (-> dbeta), with dy = dz (1 + scale);
    /// with scale-shift also dss[n, c] = sum dz y and dss[n, C + c] = sum dz.</summary>
    static void ChannelSumsKernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dss, GroupNormShape s)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int nc = Grid.GlobalIndex.X; nc < s.N * s.C; nc += stride)
            ChannelTerms.Over(x, stats, gamma, beta, ss, g, s, nc, 0, 1).Write(sums, dss, s, nc);
    }

    /// <summary>v2 of the channel sums: one group of threads per (n, c) with shared-memory trees, where v1 gives each
    /// (n, c) one thread (N*C threads in all: 8192 for N64 C128, two warps per multiprocessor on an H100, each reading
    /// its own run; measured at 14% of the floor for the whole backward).</summary>
    static void ChannelSumsV2Kernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dss, GroupNormShape s)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        for (int nc = Grid.IdxX; nc < s.N * s.C; nc += Grid.DimX)
        {
            var t = ChannelTerms.GroupSum(sh, ChannelTerms.Over(x, stats, gamma, beta, ss, g, s, nc, Group.IdxX, Group.DimX), s);
            if (Group.IdxX == 0) t.Write(sums, dss, s, nc);
        }
    }

    /// <summary>One channel's constants for the backward, read once per channel rather than per element: xhat = (x - mean)
    /// rstd, y = xhat gamma + beta, z = y (1 + scale) + shift (y without scale-shift: One 1, Shift 0, the same values).</summary>
    struct ChannelGrad
    {
        public float Mean, Rstd, Gamma, Beta, One, Shift;

        public static ChannelGrad Of(ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> ss,
            GroupNormShape s, int n, int c)
        {
            int gi = n * s.Groups + c / s.PerGroup;
            var k = new ChannelGrad { Mean = stats[gi], Rstd = stats[s.N * s.Groups + gi], Gamma = gamma[c], Beta = beta[c], One = 1f };
            if (s.ScaleShift != 0)
            {
                k.One = 1f + ss[n * 2 * s.C + c];
                k.Shift = ss[n * 2 * s.C + s.C + c];
            }
            return k;
        }

        public readonly float Xhat(float x) => (x - Mean) * Rstd;
        public readonly float Y(float xhat) => xhat * Gamma + Beta;
        public readonly float Z(float y) => y * One + Shift;

        /// <summary>dx of one element: rstd (dxhat - (s1 + xhat s2) / count), with dxhat = dz (1 + scale) gamma and s1,
        /// s2 the group's sums of dxhat and dxhat xhat.</summary>
        public readonly float InputGrad(float x, float g, float s1, float s2, GroupNormShape s)
        {
            float xhat = Xhat(x);
            float dxhat = Dz(g, Z(Y(xhat)), s) * One * Gamma;
            return Rstd * (dxhat - (s1 + xhat * s2) / s.Count);
        }
    }

    /// <summary>A channel's backward sums over its elements first, first + step, ...: sum dy xhat, sum dy (with dy =
    /// dz (1 + scale)), and with scale-shift sum dz y and sum dz.</summary>
    struct ChannelTerms
    {
        public float DyX, DySum, DzY, DzSum;

        public static ChannelTerms Over(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
            ArrayView<float> ss, ArrayView<float> g, GroupNormShape s, int nc, int first, int step)
        {
            int n = nc / s.C, c = nc % s.C;
            var k = ChannelGrad.Of(stats, gamma, beta, ss, s, n, c);
            var t = new ChannelTerms();
            for (int i = nc * s.HW + first, end = (nc + 1) * s.HW; i < end; i += step)
            {
                float xhat = k.Xhat(x[i]), y = k.Y(xhat), dz = Dz(g[i], k.Z(y), s);
                t.DyX += dz * k.One * xhat;
                t.DySum += dz * k.One;
                t.DzY += dz * y;
                t.DzSum += dz;
            }
            return t;
        }

        /// <summary>The group of threads' terms added up (shared-memory trees; every thread gets the sums).</summary>
        public static ChannelTerms GroupSum(ArrayView<float> sh, ChannelTerms t, GroupNormShape s)
        {
            t.DyX = GroupTree.Sum(sh, t.DyX);
            t.DySum = GroupTree.Sum(sh, t.DySum);
            if (s.ScaleShift != 0)
            {
                t.DzY = GroupTree.Sum(sh, t.DzY);
                t.DzSum = GroupTree.Sum(sh, t.DzSum);
            }
            return t;
        }

        /// <summary>sums[0, nc], sums[1, nc]; with scale-shift dss[n, c] and dss[n, C + c].</summary>
        public readonly void Write(ArrayView<float> sums, ArrayView<float> dss, GroupNormShape s, int nc)
        {
            sums[nc] = DyX;
            sums[s.N * s.C + nc] = DySum;
            if (s.ScaleShift == 0) return;
            int n = nc / s.C, c = nc % s.C;
            dss[n * 2 * s.C + c] = DzY;
            dss[n * 2 * s.C + s.C + c] = DzSum;
        }
    }

    /// <summary>v3: the whole backward in one kernel, one group of threads per (n, group). It first forms v2's
    /// channel sums for the group's channels (written out for the parameter gradients and the scale-shift gradient,
    /// and kept in shared memory), then dx for the group's elements. The group's x and g (PerGroup x HW values) are read
    /// twice in the same kernel, so the second read mostly hits in cache, where v1 and v2 read them again in a second
    /// kernel.</summary>
    static void BackwardV3Kernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dss, ArrayView<float> dx, GroupNormShape s)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        // Per channel of the group: gamma sum dy (-> the group's sum of dxhat), gamma sum dy xhat (-> of dxhat xhat).
        var channel = SharedMemory.Allocate<float>(2 * MaxChannelsPerGroupV3);
        int ng = s.N * s.Groups, tid = Group.IdxX, threads = Group.DimX;   // read once: a runtime call per read on the CPU accelerator
        for (int gi = Grid.IdxX; gi < ng; gi += Grid.DimX)
        {
            int n = gi / s.Groups, c0 = (gi % s.Groups) * s.PerGroup;
            for (int cc = 0; cc < s.PerGroup; cc++)
            {
                int c = c0 + cc, nc = n * s.C + c;
                var t = ChannelTerms.GroupSum(sh, ChannelTerms.Over(x, stats, gamma, beta, ss, g, s, nc, tid, Group.DimX), s);
                if (tid == 0)
                {
                    t.Write(sums, dss, s, nc);
                    channel[cc] = gamma[c] * t.DySum;
                    channel[MaxChannelsPerGroupV3 + cc] = gamma[c] * t.DyX;
                }
            }
            Group.Barrier();
            float s1 = 0, s2 = 0;
            for (int cc = 0; cc < s.PerGroup; cc++)
            {
                s1 += channel[cc];
                s2 += channel[MaxChannelsPerGroupV3 + cc];
            }
            InputGrads(x, stats, gamma, beta, ss, g, dx, s, n, c0, s1, s2, tid, threads);
            Group.Barrier();   // channel[] is rewritten by the next (n, group)
        }
    }

    /// <summary>v5's shared memory for the rows of its trees (32 KB: 32 rows of 256 threads).</summary>
    const int V5SharedFloats = 8192;

    /// <summary>v5's backward: v3's, with the channel sums' trees merged. Each thread first forms its share of every
    /// term (2, or 4 with scale-shift) of every channel of the (n, group), with no barrier in between, so its loads
    /// for all the channels can be in flight together; then one tree adds all those rows at once (GroupTree.SumRows). v3 runs one
    /// tree per channel and term: at 4 channels and 256 threads, 8 trees of 10 barriers where v5 has 1 of 9. Groups with
    /// more channels than the rows hold take several passes.</summary>
    static void BackwardV5Kernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dss, ArrayView<float> dx, GroupNormShape s)
    {
        var sh = SharedMemory.Allocate<float>(V5SharedFloats);
        int ng = s.N * s.Groups, tid = Group.IdxX, threads = Group.DimX, terms = s.ScaleShift != 0 ? 4 : 2;
        int perPass = XMath.Max(1, V5SharedFloats / threads / terms);   // channels per tree
        for (int gi = Grid.IdxX; gi < ng; gi += Grid.DimX)
        {
            int n = gi / s.Groups, c0 = (gi - n * s.Groups) * s.PerGroup;
            float s1 = 0, s2 = 0;   // the group's sums of dxhat and dxhat xhat: every thread adds the same rows in the same order
            for (int p0 = 0; p0 < s.PerGroup; p0 += perPass)
            {
                int count = XMath.Min(perPass, s.PerGroup - p0);
                for (int cc = 0; cc < count; cc++)
                {
                    var t = ChannelTerms.Over(x, stats, gamma, beta, ss, g, s, n * s.C + c0 + p0 + cc, tid, threads);
                    int row = cc * terms * threads + tid;
                    sh[row] = t.DyX;
                    sh[row + threads] = t.DySum;
                    if (terms == 4)
                    {
                        sh[row + 2 * threads] = t.DzY;
                        sh[row + 3 * threads] = t.DzSum;
                    }
                }
                GroupTree.SumRows(sh, count * terms);
                for (int cc = 0; cc < count; cc++)
                {
                    int row = cc * terms * threads;
                    s1 += gamma[c0 + p0 + cc] * sh[row + threads];
                    s2 += gamma[c0 + p0 + cc] * sh[row];
                }
                for (int cc = tid; cc < count; cc += threads)
                {
                    int row = cc * terms * threads;
                    var t = new ChannelTerms { DyX = sh[row], DySum = sh[row + threads] };
                    if (terms == 4)
                    {
                        t.DzY = sh[row + 2 * threads];
                        t.DzSum = sh[row + 3 * threads];
                    }
                    t.Write(sums, dss, s, n * s.C + c0 + p0 + cc);
                }
                Group.Barrier();   // the rows are rewritten by the next pass or (n, group)
            }
            InputGrads(x, stats, gamma, beta, ss, g, dx, s, n, c0, s1, s2, tid, threads);
        }
    }

    /// <summary>v3's and v5's dx for the group of channels c0 .. of sample n, channel by channel (its constants read once,
    /// no division per element to find it), a group's threads spread over each plane.</summary>
    static void InputGrads(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> ss,
        ArrayView<float> g, ArrayView<float> dx, GroupNormShape s, int n, int c0, float s1, float s2, int tid, int threads)
    {
        for (int cc = 0; cc < s.PerGroup; cc++)
        {
            var k = ChannelGrad.Of(stats, gamma, beta, ss, s, n, c0 + cc);
            int o = (n * s.C + c0 + cc) * s.HW;
            for (int e = tid; e < s.HW; e += threads) dx[o + e] = k.InputGrad(x[o + e], g[o + e], s1, s2, s);
        }
    }

    /// <summary>dx over runs of up to <paramref name="run"/> elements of a plane (n, c), as ApplyKernel: a run finds its
    /// plane and its group's sums of dxhat and dxhat xhat once.</summary>
    static void InputGradKernel(ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dx, GroupNormShape s, int run)
    {
        int runsPerPlane = (s.HW + run - 1) / run, units = s.N * s.C * runsPerPlane, ng = s.N * s.Groups, nch = s.N * s.C;
        int stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int nc = u / runsPerPlane, e0 = (u - nc * runsPerPlane) * run, n = nc / s.C, c = nc - n * s.C, grp = c / s.PerGroup, gi = n * s.Groups + grp;
            // Group sums of dxhat and dxhat * xhat from the per-channel sums.
            float s1 = 0, s2 = 0;
            for (int cc = grp * s.PerGroup; cc < (grp + 1) * s.PerGroup; cc++)
            {
                s1 += gamma[cc] * sums[nch + n * s.C + cc];
                s2 += gamma[cc] * sums[n * s.C + cc];
            }
            var k = ChannelGrad.Of(stats, gamma, beta, ss, s, n, c);
            int o = nc * s.HW, end = XMath.Min(e0 + run, s.HW);
            for (int e = e0; e < end; e++) dx[o + e] = k.InputGrad(x[o + e], g[o + e], s1, s2, s);
        }
    }

    // ---- launchers ----

    /// <summary>Whether a version's forward is its own: v3's is v2's and v5's v4's (they differ in their backward), so
    /// a forward alone is not tuned or timed at them.</summary>
    public static bool HasOwnForward(GroupNormVersion v) => ForwardOf(v) == v;

    /// <summary>The version whose forward kernels a version's forward runs (v3: v2, v5: v4, else itself).</summary>
    public static GroupNormVersion ForwardOf(GroupNormVersion v) => v switch
    {
        GroupNormVersion.V3FusedBackward => GroupNormVersion.V2GroupTree,
        GroupNormVersion.V5FusedRows => GroupNormVersion.V4Fused,
        _ => v,
    };

    /// <summary>Whether a version can run at this shape (v3's backward, also v4's, keeps at most MaxChannelsPerGroupV3
    /// channels per group).</summary>
    public static bool Runs(GroupNormShape s, GroupNormVersion v)
        => v is not (GroupNormVersion.V3FusedBackward or GroupNormVersion.V4Fused) || s.PerGroup <= MaxChannelsPerGroupV3;

    /// <summary>v1 on the CPU accelerator (group barriers are OS-thread barriers there: at kd sample's shapes, batch 40, v4's forward
    /// took 1.5-2x v1's and forward + backward v5 1.2-1.6x, v4 1.3-2.7x; bench/NOTES.md). On GPUs v5 (v4's forward, a
    /// backward in rows) at planes of 14x14 and up, v4 (one-launch forward, v3's backward) below where it runs, else v2;
    /// v1 for groups smaller than fmnist's 7x7 (4 channels of 49), where nothing was measured against it. On an H100
    /// (bench/results/h100-2026-11-27), forward + backward with scale-shift and SiLU: v5 0.162 ms against v4's 0.213 at
    /// [64, 128, 32, 32] and 0.256 against 0.349 at [256, 64, 28, 28]; at [256, 128, 7, 7] v4 0.081, v1 0.107, v5 0.126.</summary>
    public static GroupNormVersion Choose(Accelerator acc, GroupNormShape s)
        => Launch.IsCpu(acc) || s.Count < V4MinCount ? GroupNormVersion.V1PerGroup
         : s.HW >= V5MinPlane ? GroupNormVersion.V5FusedRows
         : Runs(s, GroupNormVersion.V4Fused) ? GroupNormVersion.V4Fused : GroupNormVersion.V2GroupTree;

    /// <summary>Choose's thresholds on GPUs: the smallest group (channels x plane) measured at v4, and the smallest plane
    /// at v5.</summary>
    const int V4MinCount = 4 * 7 * 7, V5MinPlane = 14 * 14;

    /// <summary>Threads of the kernels that walk a plane per channel (v4's forward, v2's channel sums, v3's and v5's
    /// backward): no more than the plane's HW, up to 256.</summary>
    static int PlaneThreads(Accelerator acc, GroupNormShape s) => Launch.PowerOfTwoGroup(acc, Math.Min(MaxGroup, s.HW));

    /// <summary>Groups for <paramref name="items"/> work items of one group each: as many as the multiprocessors hold at
    /// <paramref name="threads"/> a group (2 on the CPU accelerator). At small planes (fmnist's 14x14 and 7x7: 128 and 32
    /// threads) the backward kernels had 8 a multiprocessor, a quarter to an eighth of what fits.</summary>
    static int Groups(Accelerator acc, int items, int threads)
        => Math.Min(items, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * Math.Max(1, acc.MaxNumThreadsPerMultiprocessor / threads));

    /// <summary>Writes the statistics ([2, N*Groups]) and y. ss may be any view without scale-shift. <paramref name="run"/>:
    /// the apply kernel's runs (default PlaneRun; the tests try others).</summary>
    public static void Forward(Accelerator acc, GroupNormShape s, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> stats, ArrayView<float> y, GroupNormVersion? version = null, int? run = null)
    {
        int ng = s.N * s.Groups;
        var v = version ?? Choose(acc, s);
        if (v is GroupNormVersion.V4Fused or GroupNormVersion.V5FusedRows)   // v5's forward is v4's
        {
            var k = KernelCache.Get(acc, "groupnorm.forward_v4", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape>(ForwardV4Kernel));
            int threads = PlaneThreads(acc, s);
            k(new KernelConfig(Groups(acc, ng, threads), threads), x, gamma, beta, ss, stats, y, s);
            return;
        }
        if (v == GroupNormVersion.V1PerGroup)
        {
            var k = KernelCache.Get(acc, "groupnorm.stats_v1",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, GroupNormShape>(StatsV1Kernel));
            k(Launch.GridStride(acc, (long)s.N * s.C * s.HW), x, stats, s);
        }
        else
        {
            var k = KernelCache.Get(acc, "groupnorm.stats_v2",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, GroupNormShape>(StatsV2Kernel));
            int grid = Math.Min(ng, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 8);
            k(new KernelConfig(grid, Launch.PowerOfTwoGroup(acc, MaxGroup)), x, stats, s);
        }
        var apply = KernelCache.Get(acc, "groupnorm.apply", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape, int>(ApplyKernel));
        apply(Launch.GridStride(acc, (long)s.N * s.C * s.HW), x, stats, gamma, beta, ss, y, s, Math.Clamp(run ?? PlaneRun(acc, s), 1, s.HW));
    }

    /// <summary>Writes sums ([2, N*C]: per-channel sum dy xhat, then sum dy; dgamma and dbeta are their sums over n),
    /// dss (with scale-shift) and dx. <paramref name="run"/>: v1's and v2's input-gradient kernel's runs (default PlaneRun).</summary>
    public static void Backward(Accelerator acc, GroupNormShape s, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> ss, ArrayView<float> stats, ArrayView<float> g, ArrayView<float> sums, ArrayView<float> dss, ArrayView<float> dx,
        GroupNormVersion? version = null, int? run = null)
    {
        var v = version ?? Choose(acc, s);
        if (v is GroupNormVersion.V3FusedBackward or GroupNormVersion.V4Fused)
        {
            if (!Runs(s, v))
                throw new VersionNotApplicableException($"group norm v{(int)v}'s backward keeps at most {MaxChannelsPerGroupV3} channels per group in shared memory; this one has {s.PerGroup}");
            var k = KernelCache.Get(acc, "groupnorm.backward_v3", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape>(BackwardV3Kernel));
            int threads = PlaneThreads(acc, s);
            k(new KernelConfig(Groups(acc, s.N * s.Groups, threads), threads), x, stats, gamma, beta, ss, g, sums, dss, dx, s);
            return;
        }
        if (v == GroupNormVersion.V5FusedRows)
        {
            var k = KernelCache.Get(acc, "groupnorm.backward_v5", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape>(BackwardV5Kernel));
            int threads = PlaneThreads(acc, s);
            k(new KernelConfig(Groups(acc, s.N * s.Groups, threads), threads), x, stats, gamma, beta, ss, g, sums, dss, dx, s);
            return;
        }
        if (v == GroupNormVersion.V1PerGroup)
        {
            var k1 = KernelCache.Get(acc, "groupnorm.channel_sums", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape>(ChannelSumsKernel));
            k1(Launch.GridStride(acc, (long)s.N * s.C * s.HW), x, stats, gamma, beta, ss, g, sums, dss, s);
        }
        else
        {
            var k1 = KernelCache.Get(acc, "groupnorm.channel_sums_v2", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape>(ChannelSumsV2Kernel));
            int threads = PlaneThreads(acc, s);
            k1(new KernelConfig(Groups(acc, s.N * s.C, threads), threads), x, stats, gamma, beta, ss, g, sums, dss, s);
        }
        var k2 = KernelCache.Get(acc, "groupnorm.input_grad", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GroupNormShape, int>(InputGradKernel));
        k2(Launch.GridStride(acc, (long)s.N * s.C * s.HW), x, stats, gamma, beta, ss, g, sums, dx, s, Math.Clamp(run ?? PlaneRun(acc, s), 1, s.HW));
    }

    /// <summary>Forward: 3 floats moved per element (x read for the statistics and again for the apply, y written; v1's and
    /// v2's second statistics pass over x is not counted, v4 reads x from memory about once). Backward: x and g read
    /// twice, dx written.</summary>
    public static KernelCost ForwardCost(GroupNormShape s)
    {
        double n = (double)s.N * s.C * s.HW;
        return new(n * (5 + (s.ScaleShift != 0 ? 2 : 0) + (s.Silu != 0 ? 4 : 0)), 4 * (3 * n));
    }

    public static KernelCost BackwardCost(GroupNormShape s)
    {
        double n = (double)s.N * s.C * s.HW;
        return new(n * (24 + (s.Silu != 0 ? 12 : 0)), 4 * (5 * n));
    }

    public static class Reference
    {
        public static double[] Forward(double[] x, double[] gamma, double[] beta, double[]? ss, GroupNormShape s)
        {
            var y = new double[x.Length];
            int cpg = s.C / s.Groups, cnt = cpg * s.HW;
            for (int n = 0; n < s.N; n++)
            for (int g = 0; g < s.Groups; g++)
            {
                int o = (n * s.C + g * cpg) * s.HW;
                double mean = 0, sq = 0;
                for (int e = 0; e < cnt; e++) mean += x[o + e];
                mean /= cnt;
                for (int e = 0; e < cnt; e++) sq += (x[o + e] - mean) * (x[o + e] - mean);
                double rstd = 1 / Math.Sqrt(sq / cnt + s.Eps);
                for (int e = 0; e < cnt; e++)
                {
                    int c = g * cpg + e / s.HW;
                    double z = (x[o + e] - mean) * rstd * gamma[c] + beta[c];
                    if (ss != null) z = z * (1 + ss[n * 2 * s.C + c]) + ss[n * 2 * s.C + s.C + c];
                    y[o + e] = s.Silu != 0 ? Ref.Silu(z) : z;
                }
            }
            return y;
        }
    }
}
