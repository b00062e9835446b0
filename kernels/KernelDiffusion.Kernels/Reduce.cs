using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace KernelDiffusion.Kernels;

/// <summary>How a 4-D input reduces to a 4-D output whose every dimension either equals the input's or is 1.
/// Output element o decodes over Y1..Y3 and lands at input offset sum(o_d * S_d); the reduced index j
/// decodes over Q1..Q3 (the reduced dimensions' sizes, 1 elsewhere) and adds sum(j_d * T_d).</summary>
public struct ReducePlan
{
    public int Y1, Y2, Y3, S0, S1, S2, S3;
    public int Q1, Q2, Q3, T0, T1, T2, T3;
    public int Count;

    public static ReducePlan Create(int[] inShape, int[] outShape)
    {
        var x = Broadcast4.Pad4(inShape);
        var y = Broadcast4.Pad4(outShape);
        var stride = new int[4];
        var q = new int[4];
        int s = 1, count = 1;
        for (int d = 3; d >= 0; d--)
        {
            if (y[d] != x[d] && y[d] != 1) throw new ArgumentException($"cannot reduce [{string.Join(",", inShape)}] to [{string.Join(",", outShape)}]");
            stride[d] = s;
            s *= x[d];
            q[d] = y[d] == 1 ? x[d] : 1;
            count *= q[d];
        }
        int Kept(int d) => y[d] == 1 ? 0 : stride[d];
        int Red(int d) => y[d] == 1 ? stride[d] : 0;
        return new ReducePlan
        {
            Y1 = y[1], Y2 = y[2], Y3 = y[3], S0 = Kept(0), S1 = Kept(1), S2 = Kept(2), S3 = Kept(3),
            Q1 = q[1], Q2 = q[2], Q3 = q[3], T0 = Red(0), T1 = Red(1), T2 = Red(2), T3 = Red(3),
            Count = count,
        };
    }

    public int Base(int o)
    {
        int o3 = o % Y3, t = o / Y3;
        int o2 = t % Y2; t /= Y2;
        int o1 = t % Y1, o0 = t / Y1;
        return o0 * S0 + o1 * S1 + o2 * S2 + o3 * S3;
    }

    public int Offset(int j) => OffsetOf(Walk(j));

    /// <summary>Reduced index j as its digits (j0 top, then radices Q1, Q2, Q3).</summary>
    public readonly ReduceWalk Walk(int j)
    {
        int j3 = j % Q3, t = j / Q3;
        int j2 = t % Q2; t /= Q2;
        return new ReduceWalk { J0 = t / Q1, J1 = t % Q1, J2 = j2, J3 = j3 };
    }

    public readonly int OffsetOf(ReduceWalk w) => w.J0 * T0 + w.J1 * T1 + w.J2 * T2 + w.J3 * T3;

    /// <summary>The step s when every output's reduced elements lie at j s for j = 0 .. Count - 1 (Offset(j) = j s: the
    /// reduced dimensions of more than one element, innermost first, each as long a stride as the one inside it covers),
    /// else 0. 1 for a sum over the contiguous H, W of [N, C, H, W]; C for one over N of [N, C].</summary>
    public readonly int RunStep()
    {
        int step = 0, next = 0;
        bool run = Extend(Q3, T3, ref step, ref next) && Extend(Q2, T2, ref step, ref next) && Extend(Q1, T1, ref step, ref next)
                   && Extend(Count / (Q1 * Q2 * Q3), T0, ref step, ref next);
        return !run ? 0 : step == 0 ? 1 : step;
    }

    /// <summary>RunStep's walk outward over one reduced dimension of q elements t apart: false where it breaks the run.</summary>
    static bool Extend(int q, int t, ref int step, ref int next)
    {
        if (q == 1) return true;
        if (step == 0) step = t;
        else if (t != next) return false;
        next = t * q;
        return true;
    }

    /// <summary>The digits of j + k from those of j and k, carrying without a division: each digit of k is below its
    /// radix, so a digit's sum with a carry stays below twice the radix. The kernels step through their share of the
    /// reduced elements this way: decoding j afresh costs three divisions and three remainders per element, which left
    /// a GPU's reductions bound by integer arithmetic instead of memory.</summary>
    public readonly ReduceWalk Advance(ReduceWalk j, ReduceWalk k)
    {
        int j3 = j.J3 + k.J3, c = j3 >= Q3 ? 1 : 0;
        j3 -= c * Q3;
        int j2 = j.J2 + k.J2 + c;
        c = j2 >= Q2 ? 1 : 0;
        j2 -= c * Q2;
        int j1 = j.J1 + k.J1 + c;
        c = j1 >= Q1 ? 1 : 0;
        j1 -= c * Q1;
        return new ReduceWalk { J0 = j.J0 + k.J0 + c, J1 = j1, J2 = j2, J3 = j3 };
    }
}

/// <summary>A reduced index as digits (ReducePlan.Walk).</summary>
public struct ReduceWalk
{
    public int J0, J1, J2, J3;
}

public enum ReduceVersion { V1PerOutput = 1, V2GroupTree = 2, V3Split = 3, V4Runs = 4, V5WarpRuns = 5 }

/// <summary>Sum (times a scale, so mean too) over chosen axes. Deterministic: every output is summed in a
/// fixed order by one thread (v1; v4 where the summed elements lie at a constant step), by one group with a
/// shared-memory tree (v2), or, for few outputs of long sums, by several groups over slices of it whose partial sums a
/// second launch adds in order (v3), or by a warp's lanes side by side (v5, v4's runs); no float atomics.</summary>
public static class Reduce
{
    const int MaxGroup = 256;

    static void SumV1Kernel(ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int o = Grid.GlobalIndex.X; o < outCount; o += stride)
        {
            int b = p.Base(o);
            float acc = 0;
            var one = p.Walk(1);
            var w = p.Walk(0);
            for (int j = 0; j < p.Count; j++, w = p.Advance(w, one)) acc += x[b + p.OffsetOf(w)];
            y[o] = acc * scale;
        }
    }

    /// <summary>v4 (written 2026-11-27; the GPU default since 2026-11-27b): v1 where each output's reduced elements lie at a constant
    /// step (ReducePlan.RunStep): x[b + j step] in v1's order, so the same sums bit for bit, without v1's digit
    /// carries. ptxas (sm_80) puts v1's loop, which it unrolls by 4, at 100 instructions per 4 loads, most of them the
    /// carries; the sums v1 takes on GPUs are such runs (the 1x1 weight-gradient products [N, Cout, Cin] to [Cout, Cin],
    /// step Cout Cin; the embedding gradients [N, C, H, W] to [N, C], step 1) and took 2.0-2.1x PyTorch's time on an
    /// H200. Elsewhere (RunStep 0) v4 runs v1.</summary>
    static void SumV4Kernel(ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale, int step)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int o = Grid.GlobalIndex.X; o < outCount; o += stride)
        {
            int b = p.Base(o);
            float acc = 0;
            for (int j = 0; j < p.Count; j++) acc += x[b + j * step];
            y[o] = acc * scale;
        }
    }

    /// <summary>v5 (written 2026-11-27e, a session without a GPU; not yet run on one): v4's strided runs with a warp's lanes
    /// reading side by side. v4 gives each output a thread: where the step is 1 (the embedding gradients [N, C, H, W] to
    /// [N, C], each output a contiguous run) the lanes of a warp read 32 different runs, a sector each; where it is
    /// larger (the 1x1 weight products [N, Cout, Cin] to [Cout, Cin], outputs side by side) the reads coalesce, but 49,152
    /// threads of 256 loads each, four in flight, leave most of an H200 idle. v5, step 1: a warp per output, lane l adding
    /// x[b + l + w k] (w lanes; four sums in flight), the lanes then added by shuffles (WarpSum). Step larger: a warp per w outputs
    /// side by side, each of the group's warps summing one slice of their runs (four sums in flight), and shared memory
    /// adding the slices in order. Deterministic, but not v1's order: its sums differ from v1's in the last bits.</summary>
    static void SumV5Kernel(ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale, int step)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        // Read once: on the CPU accelerator each read of a grid or group dimension is a runtime call.
        int lanes = Warp.WarpSize, lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / lanes, groups = Grid.DimX;
        if (step == 1)
        {
            for (int o = Grid.IdxX * warps + warp; o < outCount; o += groups * warps)
            {
                int b = p.Base(o), j = lane;
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                for (; j + 3 * lanes < p.Count; j += 4 * lanes)
                {
                    a0 += x[b + j];
                    a1 += x[b + j + lanes];
                    a2 += x[b + j + 2 * lanes];
                    a3 += x[b + j + 3 * lanes];
                }
                for (; j < p.Count; j += lanes) a0 += x[b + j];
                float sum = WarpSum((a0 + a1) + (a2 + a3), sh, warp * lanes, lane, lanes);
                if (lane == 0) y[o] = sum * scale;
            }
            return;
        }
        int length = (p.Count + warps - 1) / warps, from = warp * length, to = XMath.Min(p.Count, from + length);
        for (int o0 = Grid.IdxX * lanes; o0 < outCount; o0 += groups * lanes)
        {
            int o = o0 + lane;
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (o < outCount)
            {
                int b = p.Base(o), j = from;
                for (; j + 3 < to; j += 4)
                {
                    a0 += x[b + j * step];
                    a1 += x[b + (j + 1) * step];
                    a2 += x[b + (j + 2) * step];
                    a3 += x[b + (j + 3) * step];
                }
                for (; j < to; j++) a0 += x[b + j * step];
            }
            sh[warp * lanes + lane] = (a0 + a1) + (a2 + a3);
            Group.Barrier();
            if (warp == 0 && o < outCount)
            {
                float sum = 0;
                for (int w = 0; w < warps; w++) sum += sh[w * lanes + lane];
                y[o] = sum * scale;
            }
            Group.Barrier();   // every warp's slices read before the next outputs' land
        }
    }

    /// <summary>The sum of x over this warp's lanes, the same in every run: a butterfly of shfl.sync.bfly on CUDA (32
    /// lanes; every lane gets it), elsewhere a tree through the warp's part of <paramref name="sh"/> from
    /// <paramref name="at"/> (lane 0 gets it; ILGPU's warp shuffles do not compile for OpenCL).</summary>
    static float WarpSum(float x, ArrayView<float> sh, int at, int lane, int lanes)
    {
        if (CudaAsm.IsSupported)
        {
            x += WarpXor.Shuffle(x, 16);
            x += WarpXor.Shuffle(x, 8);
            x += WarpXor.Shuffle(x, 4);
            x += WarpXor.Shuffle(x, 2);
            return x + WarpXor.Shuffle(x, 1);
        }
        sh[at + lane] = x;
        Warp.Barrier();
        for (int d = lanes / 2; d > 0; d >>= 1)
        {
            if (lane < d) sh[at + lane] += sh[at + lane + d];
            Warp.Barrier();
        }
        float sum = sh[at];
        Warp.Barrier();   // read before the next call's stores
        return sum;
    }

    /// <summary>v5's launch: groups of up to 128 threads (4 warps on a GPU: a run in 4 slices), enough for every output's
    /// warp (step 1) or every w outputs (step larger), at most 32 a multiprocessor (the kernel strides past them).</summary>
    static KernelConfig V5Launch(Accelerator acc, int outCount, int step)
    {
        int group = Launch.PowerOfTwoGroup(acc, 128), lanes = Math.Min(acc.WarpSize, group), warps = Math.Max(1, group / lanes);
        long groups = step == 1 ? (outCount + warps - 1) / warps : (outCount + lanes - 1) / lanes;
        return new KernelConfig((int)Math.Clamp(groups, 1, Math.Max(1, acc.NumMultiprocessors * 32L)), group);
    }

    /// <summary>One group per output; the group size must be a power of two no larger than 256.</summary>
    static void SumV2Kernel(ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int tid = Group.IdxX, threads = Group.DimX;   // read once: on the CPU accelerator each read is a runtime call
        for (int o = Grid.IdxX; o < outCount; o += Grid.DimX)
        {
            int b = p.Base(o);
            float acc = 0;
            var step = p.Walk(threads);
            var w = p.Walk(tid);
            for (int j = tid; j < p.Count; j += threads, w = p.Advance(w, step)) acc += x[b + p.OffsetOf(w)];
            sh[tid] = acc;
            Group.Barrier();
            for (int s = threads / 2; s > 0; s >>= 1)
            {
                if (tid < s) sh[tid] += sh[tid + s];
                Group.Barrier();
            }
            if (tid == 0) y[o] = sh[0] * scale;
            Group.Barrier();
        }
    }

    /// <summary>v3's first launch: partials[o slices + s] = the sum of slice s of output o's reduced elements, one group
    /// per (output, slice) with v2's walk and a shared-memory tree.</summary>
    static void SumSlicesKernel(ArrayView<float> x, ArrayView<float> partials, ReducePlan p, int outCount, int slices)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int tid = Group.IdxX, threads = Group.DimX, length = (p.Count + slices - 1) / slices;
        for (int w = Grid.IdxX; w < outCount * slices; w += Grid.DimX)
        {
            int o = w / slices, from = (w - o * slices) * length, to = XMath.Min(p.Count, from + length), b = p.Base(o);
            // Four independent sums, so each thread has four loads in flight where one sum waits on each load.
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            var step = p.Walk(threads);
            var walk = p.Walk(XMath.Min(from + tid, p.Count));
            int j = from + tid;
            for (; j + 3 * threads < to; j += 4 * threads)
            {
                a0 += x[b + p.OffsetOf(walk)];
                walk = p.Advance(walk, step);
                a1 += x[b + p.OffsetOf(walk)];
                walk = p.Advance(walk, step);
                a2 += x[b + p.OffsetOf(walk)];
                walk = p.Advance(walk, step);
                a3 += x[b + p.OffsetOf(walk)];
                walk = p.Advance(walk, step);
            }
            for (; j < to; j += threads, walk = p.Advance(walk, step)) a0 += x[b + p.OffsetOf(walk)];
            float sum = GroupTree.Sum(sh, (a0 + a1) + (a2 + a3));
            if (tid == 0) partials[w] = sum;
        }
    }

    /// <summary>v3's second launch: y[o] = scale (partials[o slices] + ... + partials[o slices + slices - 1]), in order.</summary>
    static void SumPartialsKernel(ArrayView<float> partials, ArrayView<float> y, int outCount, int slices, float scale)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int o = Grid.GlobalIndex.X; o < outCount; o += stride)
        {
            float acc = 0;
            for (int s = 0; s < slices; s++) acc += partials[o * slices + s];
            y[o] = acc * scale;
        }
    }

    /// <summary>partials[group] = the sum of x[i]^2 over the group's share of i (grid-stride, compensated, then a shared-memory tree):
    /// the caller adds the partials, so one launch over any length and no float atomics. Groups are powers of two.</summary>
    static void SumOfSquaresKernel(ArrayView<float> x, ArrayView<float> partials, int n)
    {
        var sh = SharedMemory.Allocate<float>(MaxGroup);
        int tid = Group.IdxX;
        // Compensated (Kahan) summation: a thread may add up millions of squares (the CPU accelerator runs one
        // thread per core), where a plain fp32 sum drifts by about 1e-5.
        float acc = 0, lost = 0;
        // The stride once: on the CPU accelerator every read of a grid or group dimension is a runtime call. Read in the
        // loop header it made this kernel take 0.86-1.15 s per training step of fmnist_unet (8M gradients, 2 cores),
        // 0.03-0.05 s once hoisted.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            float term = x[i] * x[i] - lost, sum = acc + term;
            lost = (sum - acc) - term;
            acc = sum;
        }
        float total = GroupTree.Sum(sh, acc);
        if (tid == 0) partials[Grid.IdxX] = total;
    }

    /// <summary>How many partial sums SumOfSquares writes on this accelerator (fixed per accelerator, so the result
    /// is the same run to run): one per core on the CPU accelerator, 8 groups per multiprocessor on a GPU.</summary>
    public static int SumOfSquaresPartials(Accelerator acc) => Launch.IsCpu(acc) ? acc.NumMultiprocessors : acc.NumMultiprocessors * 8;

    /// <summary>Writes SumOfSquaresPartials(acc) partial sums of x[i]^2, i &lt; n, into partials (a global gradient
    /// norm in one launch: the caller sums the partials, in float64 if it likes).</summary>
    public static void SumOfSquares(Accelerator acc, ArrayView<float> x, ArrayView<float> partials, int n)
    {
        var k = KernelCache.Get(acc, "reduce.sum_of_squares",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(SumOfSquaresKernel));
        k(new KernelConfig(SumOfSquaresPartials(acc), Launch.IsCpu(acc) ? 1 : Launch.PowerOfTwoGroup(acc, MaxGroup)), x, partials, n);
    }

    /// <summary>largest[0] = max(largest[0], |a[i] - w b[i]|) over i &lt; n, as float bits: integer atomics order
    /// non-negative floats as the floats themselves, so the result is exact and the same every run. A NaN difference
    /// counts as +Inf. w is 1 (a difference) or 0 (a's own largest magnitude).</summary>
    static void MaxAbsDifferenceKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<uint> largest, int n, float w)
    {
        float local = 0;
        int stride = Grid.DimX * Group.DimX;   // once: see SumOfSquaresKernel
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            float d = XMath.Abs(a[i] - w * b[i]);
            local = XMath.IsNaN(d) ? float.PositiveInfinity : XMath.Max(local, d);
        }
        if (local > 0) Atomic.Max(ref largest[0], Interop.FloatAsInt(local));
    }

    /// <summary>The largest |a[i] - b[i]|, i &lt; n (+Inf where a difference is not a number), with one float back to the
    /// host: the autotuner compares each candidate's outputs with the default's this way instead of copying them
    /// over (a conv pass's output at batch 256 is 51 MB). <paramref name="largest"/> is one uint of scratch.</summary>
    public static float MaxAbsDifference(Accelerator acc, ArrayView<float> a, ArrayView<float> b, ArrayView<uint> largest, int n)
        => LargestMagnitude(acc, a, b, 1, largest, n);

    /// <summary>The largest |a[i]|, i &lt; n (+Inf where one is not a number or infinite), one float back to the host.</summary>
    public static float MaxAbs(Accelerator acc, ArrayView<float> a, ArrayView<uint> largest, int n) => LargestMagnitude(acc, a, a, 0, largest, n);

    static float LargestMagnitude(Accelerator acc, ArrayView<float> a, ArrayView<float> b, float w, ArrayView<uint> largest, int n)
    {
        var k = KernelCache.Get(acc, "reduce.max_abs_difference",
            x => x.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<uint>, int, float>(MaxAbsDifferenceKernel));
        largest.SubView(0, 1).MemSetToZero(acc.DefaultStream);
        k(Launch.GridStride(acc, n), a, b, largest, n, w);
        var bits = new uint[1];
        largest.SubView(0, 1).CopyToCPU(acc.DefaultStream, bits);
        acc.DefaultStream.Synchronize();
        return Interop.IntAsFloat(bits[0]);
    }

    /// <summary>Counts the non-finite values (NaN, +-Inf) of x into count[0] (integer atomics: exact).</summary>
    static void CountNonFiniteKernel(ArrayView<float> x, ArrayView<int> count, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        int local = 0;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            if (!XMath.IsFinite(x[i])) local++;
        if (local > 0) Atomic.Add(ref count[0], local);
    }

    /// <summary>v1 on the CPU accelerator. On GPUs v3 where it splits the sums (few outputs of long sums: bias gradients),
    /// else v2 where each output sums many values and there are too few outputs to fill a GPU, else v4 (v1 where its sums
    /// form no strided runs). On an H100 (bench/results/h100-2026-11-27) v3 took 0.047 ms against v2's 0.317 for fmnist's
    /// bias gradient at 64 channels of 256 x 28 x 28, 0.029 against 0.088 at 128 of 256 x 14 x 14; v1 was the fastest at
    /// the two cases v3 does not split. On an H200 (bench/results/h200-2026-11-27b, call 2) v4 took 0.0369 ms against v1's
    /// 0.0392 at the emb gradient and 0.0437 against 0.0492 at the 1x1 weight products.</summary>
    public static ReduceVersion Choose(Accelerator acc, ReducePlan p, int outCount)
        => Launch.IsCpu(acc) ? ReduceVersion.V1PerOutput
         : Slices(acc, p, outCount) > 1 ? ReduceVersion.V3Split
         : p.Count >= 256 && outCount < 16384 ? ReduceVersion.V2GroupTree : ReduceVersion.V4Runs;

    /// <summary>y = scale * x summed by plan p. v3 adds its slices' sums in <paramref name="partials"/>, which the caller
    /// provides (PartialsLength floats; the ops take them from the buffer pool, as conv's scratch).</summary>
    public static void Sum(Accelerator acc, ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale, ReduceVersion? version = null,
        ArrayView<float> partials = default)
    {
        var v = version ?? Choose(acc, p, outCount);
        if (v == ReduceVersion.V5WarpRuns && p.RunStep() is int runStep and > 0)
        {
            var k = KernelCache.Get(acc, "reduce.sum_v5",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ReducePlan, int, float, int>(SumV5Kernel));
            k(V5Launch(acc, outCount, runStep), x, y, p, outCount, scale, runStep);
        }
        else if (v == ReduceVersion.V4Runs && p.RunStep() is int step and > 0)
        {
            var k = KernelCache.Get(acc, "reduce.sum_v4",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ReducePlan, int, float, int>(SumV4Kernel));
            k(Launch.GridStride(acc, (long)outCount * p.Count), x, y, p, outCount, scale, step);
        }
        else if (v is ReduceVersion.V1PerOutput or ReduceVersion.V4Runs or ReduceVersion.V5WarpRuns)
        {
            var k = KernelCache.Get(acc, "reduce.sum_v1",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ReducePlan, int, float>(SumV1Kernel));
            k(Launch.GridStride(acc, (long)outCount * p.Count), x, y, p, outCount, scale);
        }
        else if (v == ReduceVersion.V3Split && Slices(acc, p, outCount) is int slices and > 1)
            SumSplit(acc, x, y, p, outCount, scale, slices, partials);
        else
        {
            var k = KernelCache.Get(acc, "reduce.sum_v2",
                a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ReducePlan, int, float>(SumV2Kernel));
            int group = Launch.PowerOfTwoGroup(acc, MaxGroup);
            int grid = Math.Max(1, Math.Min(outCount, Launch.IsCpu(acc) ? 2 : acc.NumMultiprocessors * 8));
            k(new KernelConfig(grid, group), x, y, p, outCount, scale);
        }
    }

    /// <summary>v3's slices per output: enough (output, slice) groups for 8 per multiprocessor, each slice at least 8
    /// group-widths long; 1 (v2) when the outputs alone fill the device or the sums are short.</summary>
    public static int Slices(Accelerator acc, ReducePlan p, int outCount)
    {
        int groups = Launch.IsCpu(acc) ? acc.NumMultiprocessors : acc.NumMultiprocessors * 8;
        return Math.Max(1, Math.Min(groups / Math.Max(1, outCount), p.Count / (8 * Launch.PowerOfTwoGroup(acc, MaxGroup))));
    }

    /// <summary>The partial sums v3 needs at this shape (a float per (output, slice); 1056 at most on an H100); 0 where it
    /// runs as v2 or the version is another.</summary>
    public static long PartialsLength(Accelerator acc, ReducePlan p, int outCount, ReduceVersion v)
        => v == ReduceVersion.V3Split && Slices(acc, p, outCount) is int slices and > 1 ? (long)outCount * slices : 0;

    /// <summary>v3 with a given number of slices per output (Sum chooses it with Slices; the checks force ragged ones), its
    /// partial sums in <paramref name="partials"/> (at least outCount x slices floats).</summary>
    public static void SumSplit(Accelerator acc, ArrayView<float> x, ArrayView<float> y, ReducePlan p, int outCount, float scale, int slices,
        ArrayView<float> partials)
    {
        if (partials.Length < (long)outCount * slices)
            throw new ArgumentException($"reduce v3: {outCount} outputs in {slices} slices need {(long)outCount * slices} floats of partial sums, given {partials.Length}");
        int group = Launch.PowerOfTwoGroup(acc, MaxGroup);
        int grid = Math.Max(1, Math.Min(outCount * slices, Launch.IsCpu(acc) ? acc.NumMultiprocessors : acc.NumMultiprocessors * 8));
        KernelCache.Get(acc, "reduce.sum_v3.slices", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ReducePlan, int, int>(SumSlicesKernel))
            (new KernelConfig(grid, group), x, partials, p, outCount, slices);
        KernelCache.Get(acc, "reduce.sum_v3.partials", a => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, float>(SumPartialsKernel))
            (Launch.GridStride(acc, (long)outCount * slices), partials, y, outCount, slices, scale);
    }

    public static void CountNonFinite(Accelerator acc, ArrayView<float> x, ArrayView<int> count, int n)
    {
        var k = KernelCache.Get(acc, "reduce.count_nonfinite",
            a => a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, int>(CountNonFiniteKernel));
        count.SubView(0, 1).MemSetToZero(acc.DefaultStream);
        k(Launch.GridStride(acc, n), x, count, n);
    }

    public static KernelCost SumCost(long inLen, long outLen) => new(inLen, 4.0 * (inLen + outLen));

    public static class Reference
    {
        public static double[] Sum(double[] x, int[] inShape, int[] outShape, double scale)
        {
            var p = ReducePlan.Create(inShape, outShape);
            int outCount = outShape.Aggregate(1, (a, b) => a * b);
            var y = new double[outCount];
            for (int o = 0; o < outCount; o++)
            {
                double acc = 0;
                int b = p.Base(o);
                for (int j = 0; j < p.Count; j++) acc += x[b + p.Offset(j)];
                y[o] = acc * scale;
            }
            return y;
        }
    }
}
