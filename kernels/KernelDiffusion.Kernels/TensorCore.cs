using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Util;

namespace KernelDiffusion.Kernels;

/// <summary>The warp-level tf32 matrix multiply-accumulate <c>mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32</c>
/// (sm_80 and newer), and the fragments it takes. D (16 x 8) = A (16 x 8) B (8 x 8) + C, spread over the 32 lanes of a
/// warp as the PTX ISA's "matrix fragments for mma.m16n8k8" lays them out, with g = lane / 4 and t = lane % 4:
/// <list type="bullet">
/// <item>A: a0 = A[g][t], a1 = A[g + 8][t], a2 = A[g][t + 4], a3 = A[g + 8][t + 4];</item>
/// <item>B: b0 = B[t][g], b1 = B[t + 4][g];</item>
/// <item>C and D: c0 = C[g][2t], c1 = C[g][2t + 1], c2 = C[g + 8][2t], c3 = C[g + 8][2t + 1].</item>
/// </list>
/// On CUDA the instruction runs through inline PTX (<see cref="WarpTile"/>). Elsewhere (the CPU accelerator, OpenCL) the
/// same product is computed from the same fragments by gathering them through shared memory, so the fragment loads and
/// the tiling around them are checked on a machine without tensor cores; only the inline PTX is not (ptxas assembles
/// it: kd check --compile ptx).</summary>
public static class TensorCore
{
    /// <summary>The block tiling GEMM v5 and conv v6 and v7 share: a group of four warps computes a 64 x 64 tile of C, each
    /// warp a 32 x 32 <see cref="WarpTile"/>, staging 16 values of k at a time. A is staged row-major [64][16], B
    /// k-major [16][64], rows padded to strides 20 and 72 so that a warp's fragment loads hit 32 different banks.</summary>
    public const int Tile = 64, StageK = 16, Threads = 128, StrideA = StageK + 4, StrideB = Tile + 8;

    /// <summary>Whether the tensor-core kernels can run here: whole 32-lane warps in 128-thread groups (CUDA; the CPU
    /// accelerator only with a device built so, as kd check and the tests do, where the mma is emulated).</summary>
    public static bool Runs(Accelerator acc, int threads = Threads) => Launch.Has32LaneGroups(acc, threads);

    /// <summary>The error for a device where <see cref="Runs"/> is false.</summary>
    public static VersionNotApplicableException Refusal(Accelerator acc, string kernel, int threads = Threads) => new(
        $"{kernel} (tensor cores) needs 32-lane warps and groups of {threads} threads; " +
        $"{acc.Name} has {acc.WarpSize}-lane warps and groups of up to {acc.MaxNumThreadsPerGroup}");

    /// <summary>Rounds to tf32 (10 mantissa bits) to nearest, ties away from zero, as <c>cvt.rna.tf32.f32</c> does.
    /// Kernels round operands once, when they stage them in shared memory: the tensor cores then see exact tf32 values,
    /// and the emulation computes with the same ones. Infinities and NaNs pass unchanged.</summary>
    public static float RoundTf32(float x)
    {
        uint bits = Interop.FloatAsInt(x);
        if ((bits & 0x7F800000u) == 0x7F800000u) return x;
        return Interop.IntAsFloat((bits + 0x1000u) & 0xFFFFE000u);
    }

    /// <summary>x with its 13 low mantissa bits cleared: the tf32 value the tensor cores read from an fp32 register ("only
    /// the first 10 bits of the input mantissa are read", PyTorch's notes on TF32), which is what GEMM v17 and v18 give them.
    /// The emulated mma applies it to every operand. Infinities and NaNs pass unchanged.</summary>
    public static float TruncateTf32(float x)
    {
        uint bits = Interop.FloatAsInt(x);
        return (bits & 0x7F800000u) == 0x7F800000u ? x : Interop.IntAsFloat(bits & 0xFFFFE000u);
    }

    /// <summary>RoundTf32 of each value.</summary>
    public static Quad RoundTf32(Quad q) => new(RoundTf32(q.X0), RoundTf32(q.X1), RoundTf32(q.X2), RoundTf32(q.X3));

    /// <summary>Warps per group the emulation has scratch for (v5 and conv v6/v7 run four, GEMM v16-v18 eight).</summary>
    public const int EmulatedWarps = 8;
    const int OperandsPerLane = 6;

    /// <summary>The shared scratch the emulated mma needs: allocate once per kernel and pass it to every call. ILGPU
    /// 1.5.3 keeps both allocations even on CUDA, where the emulation's 6 KB go unused.</summary>
    public static ArrayView<float> Scratch()
    {
        if (CudaAsm.IsSupported) return SharedMemory.Allocate<float>(1);
        return SharedMemory.Allocate<float>(EmulatedWarps * 32 * OperandsPerLane);
    }

    /// <summary>What <c>ldmatrix.sync.aligned.m8n8.x4.shared.b16</c> gives this lane from 32-bit data, without the
    /// instruction (GEMM v20 off CUDA): lane l names the row of matrix l / 8 that starts at float <paramref name="rowAt"/>
    /// of <paramref name="sh"/> (4 floats, 16 bytes); lane t receives, from each matrix j, the word t % 4 of its row t / 4.
    /// The row indices pass through the warp's part of the scratch (as floats: exact below 2^24).</summary>
    internal static Float4 LdsmEmulated(ArrayView<float> sh, int rowAt, ArrayView<float> scratch)
    {
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx * 32 * OperandsPerLane, t = lane & 3, r = lane >> 2;
        scratch[warp + lane] = rowAt;
        Warp.Barrier();
        var v = new Float4(sh[(int)scratch[warp + r] + t], sh[(int)scratch[warp + 8 + r] + t], sh[(int)scratch[warp + 16 + r] + t],
            sh[(int)scratch[warp + 24 + r] + t]);
        Warp.Barrier();
        return v;
    }

    /// <summary>Emulate's 3xTF32 form (GEMM v21, attention v13 and v14): c + a b as the three mma a_small b_big + a_big b_small
    /// + a_big b_big, each operand split where it is read (big = RoundTf32(x), small = x - big read truncated, as the
    /// tensor cores read it), all three in one pass: two warp barriers where three Emulate calls take six.</summary>
    internal static MmaAcc Emulate3(MmaAcc c, FragA a, FragB b, ArrayView<float> scratch) => Gathered(c, a, b, scratch, 1);

    /// <summary>x y as 3xTF32 takes it: x_small y_big + x_big y_small + x_big y_big.</summary>
    static float Product3(float x, float y)
    {
        float xb = RoundTf32(x), yb = RoundTf32(y);
        return TruncateTf32(x - xb) * yb + xb * TruncateTf32(y - yb) + xb * yb;
    }

    /// <summary>x of lane (this lane xor <paramref name="mask"/>, 1 or 2: within a row's four lanes), for the kernels that
    /// hold mma fragments (attention v13): shfl.sync.bfly on CUDA; elsewhere through the warp's part of the scratch
    /// (ILGPU's Warp.ShuffleXor does not compile for OpenCL).</summary>
    public static float QuadXor(float x, int mask, ArrayView<float> scratch)
    {
        if (CudaAsm.IsSupported) return WarpXor.Shuffle(x, mask);
        int warp = Warp.WarpIdx * 32 * OperandsPerLane, lane = Warp.LaneIdx;
        scratch[warp + lane] = x;
        Warp.Barrier();
        float z = scratch[warp + (lane ^ mask)];
        Warp.Barrier();
        return z;
    }

    /// <summary>The product from the fragments' definition: every lane publishes its six operands (truncated to tf32, as
    /// the tensor cores read them: a no-op on operands already rounded) in the warp's part of the scratch, then for each
    /// k reads A[g][k], A[g + 8][k], B[k][2t] and B[k][2t + 1] from the lanes that hold
    /// them. (Two warp barriers per call; warp shuffles would take 64, which the CPU accelerator runs as OS-thread
    /// barriers.)</summary>
    internal static MmaAcc Emulate(MmaAcc c, FragA a, FragB b, ArrayView<float> scratch) => Gathered(c, a, b, scratch, 0);

    /// <summary>Emulate (<paramref name="split"/> 0: operands published truncated, one product each) and Emulate3 (1:
    /// published as they are, each product 3xTF32's three); split is a constant at both calls.</summary>
    static MmaAcc Gathered(MmaAcc c, FragA a, FragB b, ArrayView<float> scratch, int split)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int warp = Warp.WarpIdx * 32 * OperandsPerLane, mine = warp + lane * OperandsPerLane;
        scratch[mine] = Published(a.A0, split);
        scratch[mine + 1] = Published(a.A1, split);
        scratch[mine + 2] = Published(a.A2, split);
        scratch[mine + 3] = Published(a.A3, split);
        scratch[mine + 4] = Published(b.B0, split);
        scratch[mine + 5] = Published(b.B1, split);
        Warp.Barrier();
        for (int k = 0; k < 8; k++)
        {
            int holder = k & 3, high = k >> 2;   // k < 4: a0/a1 and b0; k >= 4: a2/a3 and b1
            int rowLane = warp + (g * 4 + holder) * OperandsPerLane;
            float top = scratch[rowLane + 2 * high], bottom = scratch[rowLane + 2 * high + 1];
            float left = scratch[warp + (2 * t * 4 + holder) * OperandsPerLane + 4 + high];
            float right = scratch[warp + ((2 * t + 1) * 4 + holder) * OperandsPerLane + 4 + high];
            c.C0 += Product(top, left, split);
            c.C1 += Product(top, right, split);
            c.C2 += Product(bottom, left, split);
            c.C3 += Product(bottom, right, split);
        }
        Warp.Barrier();
        return c;
    }

    static float Published(float x, int split) => split != 0 ? x : TruncateTf32(x);

    static float Product(float x, float y, int split) => split != 0 ? Product3(x, y) : x * y;
}

/// <summary>cp.async (sm_80): copies from global to shared memory that bypass registers, issued in commit groups a
/// thread later waits for (GEMM v17-v20). On CUDA through inline PTX; elsewhere each copy happens at once, so committing and
/// waiting do nothing.
/// <para>The PTX needs addresses, which ILGPU 1.5.3 does not give a kernel (LoadEffectiveAddressAsPtr and
/// Unsafe.AsPointer are refused inside kernels). So the source's device address comes from the host (a kernel
/// argument: <see cref="DeviceAddress"/>), and the destination is the group's dynamic shared memory, which ILGPU's PTX
/// declares as <c>__dyn_shared_alloca</c>: the copies name that symbol. ptxas rejects the PTX if ILGPU ever renames it.</para></summary>
public static class AsyncCopy
{
    /// <summary>The device address of a view's first element, for a kernel argument (host code only). It is the
    /// buffer's native pointer plus the view's offset: on CUDA, a device pointer.</summary>
    public static long DeviceAddress(ArrayView<float> view) => view.LoadEffectiveAddressAsPtr().ToInt64();

    /// <summary>Copies a chunk of 4 floats into the dynamic shared memory <paramref name="dst"/>: src[at + q step] into
    /// dst[slot + q spacing] for q = 0..3, or 0 where rows &lt;= 32 q (past the source's edge: nothing is read, the slot
    /// is zero-filled). <paramref name="spacing"/> is 32 (v17: a 128-wide k-major tile's quarter rows) or 256 (v18's
    /// packed tiles), a constant at every call. <paramref name="srcAddress"/> is src's DeviceAddress.</summary>
    public static void Chunk(ArrayView<float> dst, int slot, int spacing, ArrayView<float> src, long srcAddress, int at, int step, int rows)
        => Copies4(dst, slot, spacing, src, srcAddress, at, step, rows <= 0 ? 0 : Math.Min(4, (rows + 31) >> 5));

    /// <summary>Four 4-byte copies into the dynamic shared memory <paramref name="dst"/>: src[at + q step] into
    /// dst[slot + q spacing] for q &lt; <paramref name="count"/> (0..4), zero-filled for the rest (past the source's edge
    /// nothing is read). <paramref name="spacing"/> is 1 (attention v15's runs: Run4), 4 (v15's 16-channel rows), 32 or
    /// 256 (GEMM v17 and v18: Chunk), a constant at every call: the PTX's immediate offsets.
    /// <paramref name="srcAddress"/> is src's DeviceAddress.</summary>
    public static void Copies4(ArrayView<float> dst, int slot, int spacing, ArrayView<float> src, long srcAddress, int at, int step, int count)
    {
        if (CudaAsm.IsSupported)
        {
            // A copy past the edge reads 0 of 4 bytes from the source's first element, which exists.
            long s0 = srcAddress + 4L * (count > 0 ? at : 0), s1 = srcAddress + 4L * (count > 1 ? at + step : 0);
            long s2 = srcAddress + 4L * (count > 2 ? at + 2 * step : 0), s3 = srcAddress + 4L * (count > 3 ? at + 3 * step : 0);
            int n0 = count > 0 ? 4 : 0, n1 = count > 1 ? 4 : 0, n2 = count > 2 ? 4 : 0, n3 = count > 3 ? 4 : 0;
            if (spacing == 1) CudaAsm.Emit(Copies4Ptx1, 4 * slot, s0, s1, s2, s3, n0, n1, n2, n3);
            else if (spacing == 4) CudaAsm.Emit(Copies4Ptx4, 4 * slot, s0, s1, s2, s3, n0, n1, n2, n3);
            else if (spacing == 32) CudaAsm.Emit(Copies4Ptx32, 4 * slot, s0, s1, s2, s3, n0, n1, n2, n3);
            else CudaAsm.Emit(Copies4Ptx256, 4 * slot, s0, s1, s2, s3, n0, n1, n2, n3);
            return;
        }
        dst[slot] = count > 0 ? src[at] : 0f;
        dst[slot + spacing] = count > 1 ? src[at + step] : 0f;
        dst[slot + 2 * spacing] = count > 2 ? src[at + 2 * step] : 0f;
        dst[slot + 3 * spacing] = count > 3 ? src[at + 3 * step] : 0f;
    }

    // %0: the first slot's byte offset into the dynamic shared memory; %1-%4: the sources' device addresses; %5-%8: the
    // bytes to read (4, or 0 to zero-fill). The slots are 4, 16, 128 or 1024 bytes apart: immediate offsets.
    const string Copies4Head = "{ .reg .u32 kds; .reg .u64 kd0, kd1, kd2, kd3; mov.u32 kds, __dyn_shared_alloca; add.u32 kds, kds, %0; " +
        "cvta.to.global.u64 kd0, %1; cvta.to.global.u64 kd1, %2; cvta.to.global.u64 kd2, %3; cvta.to.global.u64 kd3, %4; cp.async.ca.shared.global [kds], [kd0], 4, %5; ";
    const string Copies4Ptx1 = Copies4Head + "cp.async.ca.shared.global [kds+4], [kd1], 4, %6; " +
        "cp.async.ca.shared.global [kds+8], [kd2], 4, %7; cp.async.ca.shared.global [kds+12], [kd3], 4, %8; }";
    const string Copies4Ptx4 = Copies4Head + "cp.async.ca.shared.global [kds+16], [kd1], 4, %6; " +
        "cp.async.ca.shared.global [kds+32], [kd2], 4, %7; cp.async.ca.shared.global [kds+48], [kd3], 4, %8; }";
    const string Copies4Ptx32 = Copies4Head + "cp.async.ca.shared.global [kds+128], [kd1], 4, %6; " +
        "cp.async.ca.shared.global [kds+256], [kd2], 4, %7; cp.async.ca.shared.global [kds+384], [kd3], 4, %8; }";
    const string Copies4Ptx256 = Copies4Head + "cp.async.ca.shared.global [kds+1024], [kd1], 4, %6; " +
        "cp.async.ca.shared.global [kds+2048], [kd2], 4, %7; cp.async.ca.shared.global [kds+3072], [kd3], 4, %8; }";

    /// <summary>Copies 4 consecutive floats, src[at .. at + 3], into the dynamic shared memory dst[slot .. slot + 3] as
    /// one 16-byte copy (GEMM v19), or zero-fills them where <paramref name="inside"/> is false. Both ends must be
    /// 16-byte aligned: at a multiple of 4 into a source whose address is, slot a multiple of 4. (Run4's 16-byte copy of
    /// all or none, written apart: through Run4, with its byte count 4 x count, GEMM v19-v23's stage loops take 8
    /// instructions more under ptxas 11.8.)</summary>
    public static void Vector(ArrayView<float> dst, int slot, ArrayView<float> src, long srcAddress, int at, bool inside)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(VectorPtx, 4 * slot, srcAddress + 4L * (inside ? at : 0), inside ? 16 : 0);
            return;
        }
        dst[slot] = inside ? src[at] : 0f;
        dst[slot + 1] = inside ? src[at + 1] : 0f;
        dst[slot + 2] = inside ? src[at + 2] : 0f;
        dst[slot + 3] = inside ? src[at + 3] : 0f;
    }

    // %0: the slot's byte offset into the dynamic shared memory; %1: the source's device address; %2: the bytes to read
    // (16, or fewer to zero-fill the rest: Run4). .cg: the operands are streamed through L2 only.
    const string VectorPtx = "{ .reg .u32 kds; .reg .u64 kd0; mov.u32 kds, __dyn_shared_alloca; add.u32 kds, kds, %0; " +
        "cvta.to.global.u64 kd0, %1; cp.async.cg.shared.global [kds], [kd0], 16, %2; }";

    /// <summary><see cref="Vector"/> for a copy known to lie inside (GEMM v23, attention v15's inner tiles): the PTX has no
    /// zero-fill operand, so ptxas emits the copy without a predicate. Off CUDA, ends not 16-byte aligned store NaN, as
    /// in Run4.</summary>
    public static void VectorWhole(ArrayView<float> dst, int slot, ArrayView<float> src, long srcAddress, int at)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(VectorWholePtx, 4 * slot, srcAddress + 4L * at);
            return;
        }
        if (MarkedMisaligned(dst, slot, at)) return;
        dst[slot] = src[at];
        dst[slot + 1] = src[at + 1];
        dst[slot + 2] = src[at + 2];
        dst[slot + 3] = src[at + 3];
    }

    const string VectorWholePtx = "{ .reg .u32 kds; .reg .u64 kd0; mov.u32 kds, __dyn_shared_alloca; add.u32 kds, kds, %0; " +
        "cvta.to.global.u64 kd0, %1; cp.async.cg.shared.global [kds], [kd0], 16; }";

    /// <summary>Copies src[at .. at + count - 1] (<paramref name="count"/> 0..4) into the dynamic shared memory dst[slot ..
    /// slot + 3], zero-filling the rest: one 16-byte copy where <paramref name="vector"/> (at and slot multiples of 4 in
    /// a 16-byte-aligned source), else four 4-byte copies (Copies4). Off CUDA a vector copy whose ends are not 16-byte
    /// aligned stores NaN, as a misaligned copy would fail on the GPU.</summary>
    public static void Run4(ArrayView<float> dst, int slot, ArrayView<float> src, long srcAddress, int at, int count, bool vector)
    {
        if (CudaAsm.IsSupported)
        {
            if (vector) CudaAsm.Emit(VectorPtx, 4 * slot, srcAddress + 4L * (count > 0 ? at : 0), 4 * count);
            else Copies4(dst, slot, 1, src, srcAddress, at, 1, count);
            return;
        }
        if (vector && MarkedMisaligned(dst, slot, at)) return;
        Copies4(dst, slot, 1, src, srcAddress, at, 1, count);
    }

    /// <summary>The emulation's stand-in for a 16-byte copy the GPU would refuse: where at or slot is not a multiple of 4,
    /// dst[slot .. slot + 3] are set to NaN (so kd check fails the case) and true is returned.</summary>
    static bool MarkedMisaligned(ArrayView<float> dst, int slot, int at)
    {
        if ((at & 3) == 0 && (slot & 3) == 0) return false;
        dst[slot] = dst[slot + 1] = dst[slot + 2] = dst[slot + 3] = float.NaN;
        return true;
    }

    /// <summary>Copies src[at] into the dynamic shared memory dst[slot] as one 4-byte copy, or zero-fills it where
    /// <paramref name="inside"/> is false.</summary>
    public static void Single(ArrayView<float> dst, int slot, ArrayView<float> src, long srcAddress, int at, bool inside)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(SinglePtx, 4 * slot, srcAddress + 4L * (inside ? at : 0), inside ? 4 : 0);
            return;
        }
        dst[slot] = inside ? src[at] : 0f;
    }

    const string SinglePtx = "{ .reg .u32 kds; .reg .u64 kd0; mov.u32 kds, __dyn_shared_alloca; add.u32 kds, kds, %0; " +
        "cvta.to.global.u64 kd0, %1; cp.async.ca.shared.global [kds], [kd0], 4, %2; }";

    /// <summary>Closes this thread's group of copies issued since the last commit (possibly none).</summary>
    public static void Commit()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.commit_group;");
    }

    /// <summary>Waits until every copy this thread issued has landed (committed or not). Its copies are then visible to
    /// this thread; a barrier makes every thread's visible to all.</summary>
    public static void WaitAll()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.wait_all;");
    }

    /// <summary>Waits until at most one of this thread's committed groups is still in flight: with three stages, the
    /// oldest one has landed. Its copies are then visible to this thread; a barrier makes every thread's visible to all.</summary>
    public static void WaitAllButOne()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.wait_group 1;");
    }
}

/// <summary>A warp's 32 x 32 tile of C as 2 x 4 mma tiles of 16 x 8: rows row + 16 i, columns col + 8 j.
/// <para>On CUDA its 32 accumulators per lane live in PTX registers named kdc0..kdc31, declared by
/// <see cref="Declare"/> and used by inline PTX only. Passing them in and out of each mma through CudaAsm.EmitRef would
/// put them in local memory: ILGPU 1.5.3 gives every inline-assembly output a local variable, and ptxas 11.8 did not
/// promote them (cuobjdump showed 152 local loads and stores per step of k). Inputs passed by value stay in
/// registers. So a kernel can hold one WarpTile at a time, and reads its results once, in <see cref="Get"/>.</para>
/// <para>Elsewhere the accumulators are the eight MmaAcc fields and each mma is emulated.</para></summary>
public struct WarpTile
{
    MmaAcc c00, c01, c02, c03, c10, c11, c12, c13;

    /// <summary>Declares the PTX accumulators: call once at the start of the kernel (a second call site would declare
    /// them twice, which ptxas rejects).</summary>
    public static void Declare()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit(".reg .f32 kdc<32>;");
    }

    public static WarpTile Zero()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("mov.f32 kdc0, 0f00000000; mov.f32 kdc1, 0f00000000; mov.f32 kdc2, 0f00000000; mov.f32 kdc3, 0f00000000; mov.f32 kdc4, 0f00000000; mov.f32 kdc5, 0f00000000; " +
                "mov.f32 kdc6, 0f00000000; mov.f32 kdc7, 0f00000000; mov.f32 kdc8, 0f00000000; mov.f32 kdc9, 0f00000000; mov.f32 kdc10, 0f00000000; mov.f32 kdc11, 0f00000000; " +
                "mov.f32 kdc12, 0f00000000; mov.f32 kdc13, 0f00000000; mov.f32 kdc14, 0f00000000; mov.f32 kdc15, 0f00000000; mov.f32 kdc16, 0f00000000; mov.f32 kdc17, 0f00000000; " +
                "mov.f32 kdc18, 0f00000000; mov.f32 kdc19, 0f00000000; mov.f32 kdc20, 0f00000000; mov.f32 kdc21, 0f00000000; mov.f32 kdc22, 0f00000000; mov.f32 kdc23, 0f00000000; " +
                "mov.f32 kdc24, 0f00000000; mov.f32 kdc25, 0f00000000; mov.f32 kdc26, 0f00000000; mov.f32 kdc27, 0f00000000; mov.f32 kdc28, 0f00000000; mov.f32 kdc29, 0f00000000; " +
                "mov.f32 kdc30, 0f00000000; mov.f32 kdc31, 0f00000000;");
        return default;
    }

    // One m16n8k8 per mma tile (i, j) into accumulators kdc[4 (4 i + j)] .. + 3. The operands (%0-%5: a0-a3, b0, b1) are
    // tf32 values in f32 registers; mov.b32 gives the instruction the b32 registers it takes.
    internal const string Operands = "{ .reg .b32 ta0, ta1, ta2, ta3, tb0, tb1; mov.b32 ta0, %0; mov.b32 ta1, %1; mov.b32 ta2, %2; " +
        "mov.b32 ta3, %3; mov.b32 tb0, %4; mov.b32 tb1, %5; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
    const string Mma00 = Operands + "{kdc0, kdc1, kdc2, kdc3}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc0, kdc1, kdc2, kdc3}; }";
    const string Mma01 = Operands + "{kdc4, kdc5, kdc6, kdc7}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc4, kdc5, kdc6, kdc7}; }";
    const string Mma02 = Operands + "{kdc8, kdc9, kdc10, kdc11}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc8, kdc9, kdc10, kdc11}; }";
    const string Mma03 = Operands + "{kdc12, kdc13, kdc14, kdc15}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc12, kdc13, kdc14, kdc15}; }";
    const string Mma10 = Operands + "{kdc16, kdc17, kdc18, kdc19}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc16, kdc17, kdc18, kdc19}; }";
    const string Mma11 = Operands + "{kdc20, kdc21, kdc22, kdc23}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc20, kdc21, kdc22, kdc23}; }";
    const string Mma12 = Operands + "{kdc24, kdc25, kdc26, kdc27}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc24, kdc25, kdc26, kdc27}; }";
    const string Mma13 = Operands + "{kdc28, kdc29, kdc30, kdc31}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdc28, kdc29, kdc30, kdc31}; }";

    /// <summary>One step of 8 values of k: A rows row .. row + 31 of the row-major tile <paramref name="at"/> (row
    /// stride sa), B columns col .. col + 31 of the k-major tile <paramref name="bt"/> (stride sb), both from column
    /// or row k. 8 fragment loads (16 shared reads per lane) feed 8 mma.</summary>
    public static WarpTile Step(WarpTile w, ArrayView<float> at, int row, int sa, ArrayView<float> bt, int col, int sb, int k,
        ArrayView<float> scratch)
        => Multiply(w, FragA.Load(at, row, k, sa), FragA.Load(at, row + 16, k, sa),
            FragB.Load(bt, k, col, sb), FragB.Load(bt, k, col + 8, sb), FragB.Load(bt, k, col + 16, sb), FragB.Load(bt, k, col + 24, sb),
            scratch);

    /// <summary>w + A B for A's two 16-row fragments and B's four 8-column fragments: mma tile (i, j) takes a_i and b_j.</summary>
    public static WarpTile Multiply(WarpTile w, FragA a0, FragA a1, FragB b0, FragB b1, FragB b2, FragB b3, ArrayView<float> scratch)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(Mma00, a0.A0, a0.A1, a0.A2, a0.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma01, a0.A0, a0.A1, a0.A2, a0.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma02, a0.A0, a0.A1, a0.A2, a0.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma03, a0.A0, a0.A1, a0.A2, a0.A3, b3.B0, b3.B1);
            CudaAsm.Emit(Mma10, a1.A0, a1.A1, a1.A2, a1.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma11, a1.A0, a1.A1, a1.A2, a1.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma12, a1.A0, a1.A1, a1.A2, a1.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma13, a1.A0, a1.A1, a1.A2, a1.A3, b3.B0, b3.B1);
            return w;
        }
        return Emulated(w, a0, a1, b0, b1, b2, b3, scratch);
    }

    /// <summary>Multiply's emulation, with no inline PTX on any path (WarpTile64 runs it for its two halves).</summary>
    internal static WarpTile Emulated(WarpTile w, FragA a0, FragA a1, FragB b0, FragB b1, FragB b2, FragB b3, ArrayView<float> scratch)
    {
        w.c00 = TensorCore.Emulate(w.c00, a0, b0, scratch);
        w.c01 = TensorCore.Emulate(w.c01, a0, b1, scratch);
        w.c02 = TensorCore.Emulate(w.c02, a0, b2, scratch);
        w.c03 = TensorCore.Emulate(w.c03, a0, b3, scratch);
        w.c10 = TensorCore.Emulate(w.c10, a1, b0, scratch);
        w.c11 = TensorCore.Emulate(w.c11, a1, b1, scratch);
        w.c12 = TensorCore.Emulate(w.c12, a1, b2, scratch);
        w.c13 = TensorCore.Emulate(w.c13, a1, b3, scratch);
        return w;
    }

    /// <summary>This lane's accumulator e (0-3) of mma tile (i, j): element (row + 16 i + g + 8 (e / 2),
    /// col + 8 j + 2 t + e % 2) of the warp's tile, with g = lane / 4 and t = lane % 4.</summary>
    public readonly float Get(int i, int j, int e)
    {
        if (CudaAsm.IsSupported) return Ptx(4 * (4 * i + j) + e);
        return Emulated(i, j, e);
    }

    /// <summary>Emulated with each mma as 3xTF32 (TensorCore.Emulate3): GEMM v21.</summary>
    internal static WarpTile Emulated3(WarpTile w, FragA a0, FragA a1, FragB b0, FragB b1, FragB b2, FragB b3, ArrayView<float> scratch)
        => Emulated3Row(Emulated3Row(w, 0, a0, b0, b1, b2, b3, scratch), 1, a1, b0, b1, b2, b3, scratch);

    /// <summary>Row tile i (0: rows 0-15, 1: 16-31) only, each mma as 3xTF32: attention v13's and v14's products, each one
    /// row tile.</summary>
    internal static WarpTile Emulated3Row(WarpTile w, int i, FragA a, FragB b0, FragB b1, FragB b2, FragB b3, ArrayView<float> scratch)
    {
        if (i == 0)
        {
            w.c00 = TensorCore.Emulate3(w.c00, a, b0, scratch);
            w.c01 = TensorCore.Emulate3(w.c01, a, b1, scratch);
            w.c02 = TensorCore.Emulate3(w.c02, a, b2, scratch);
            w.c03 = TensorCore.Emulate3(w.c03, a, b3, scratch);
        }
        else
        {
            w.c10 = TensorCore.Emulate3(w.c10, a, b0, scratch);
            w.c11 = TensorCore.Emulate3(w.c11, a, b1, scratch);
            w.c12 = TensorCore.Emulate3(w.c12, a, b2, scratch);
            w.c13 = TensorCore.Emulate3(w.c13, a, b3, scratch);
        }
        return w;
    }

    /// <summary>The emulated accumulators of row tile i (0: rows 0-15, 1: 16-31) set to zero (attention v13's scores).</summary>
    internal static WarpTile ZeroRowTile(WarpTile w, int i)
    {
        if (i == 0) w.c00 = w.c01 = w.c02 = w.c03 = default;
        else w.c10 = w.c11 = w.c12 = w.c13 = default;
        return w;
    }

    /// <summary>The emulated accumulators of row tile i scaled: each lane's row g (C0, C1) by <paramref name="top"/>, its row
    /// g + 8 (C2, C3) by <paramref name="bottom"/> (attention v13's output, rescaled by the online softmax).</summary>
    internal static WarpTile ScaleRowTile(WarpTile w, int i, float top, float bottom)
    {
        if (i == 0) (w.c00, w.c01, w.c02, w.c03) = (Scale(w.c00, top, bottom), Scale(w.c01, top, bottom), Scale(w.c02, top, bottom), Scale(w.c03, top, bottom));
        else (w.c10, w.c11, w.c12, w.c13) = (Scale(w.c10, top, bottom), Scale(w.c11, top, bottom), Scale(w.c12, top, bottom), Scale(w.c13, top, bottom));
        return w;
    }

    static MmaAcc Scale(MmaAcc c, float top, float bottom) => new() { C0 = c.C0 * top, C1 = c.C1 * top, C2 = c.C2 * bottom, C3 = c.C3 * bottom };

    /// <summary>Get's emulated accumulators.</summary>
    internal readonly float Emulated(int i, int j, int e)
    {
        var c = (4 * i + j) switch { 0 => c00, 1 => c01, 2 => c02, 3 => c03, 4 => c10, 5 => c11, 6 => c12, _ => c13 };
        return e switch { 0 => c.C0, 1 => c.C1, 2 => c.C2, _ => c.C3 };
    }

    /// <summary>Register kdc{n} (each case names its register: the PTX text must be a constant).</summary>
    static float Ptx(int n)
    {
        float v;
        switch (n)
        {
            case 0: CudaAsm.Emit("mov.f32 %0, kdc0;", out v); break;
            case 1: CudaAsm.Emit("mov.f32 %0, kdc1;", out v); break;
            case 2: CudaAsm.Emit("mov.f32 %0, kdc2;", out v); break;
            case 3: CudaAsm.Emit("mov.f32 %0, kdc3;", out v); break;
            case 4: CudaAsm.Emit("mov.f32 %0, kdc4;", out v); break;
            case 5: CudaAsm.Emit("mov.f32 %0, kdc5;", out v); break;
            case 6: CudaAsm.Emit("mov.f32 %0, kdc6;", out v); break;
            case 7: CudaAsm.Emit("mov.f32 %0, kdc7;", out v); break;
            case 8: CudaAsm.Emit("mov.f32 %0, kdc8;", out v); break;
            case 9: CudaAsm.Emit("mov.f32 %0, kdc9;", out v); break;
            case 10: CudaAsm.Emit("mov.f32 %0, kdc10;", out v); break;
            case 11: CudaAsm.Emit("mov.f32 %0, kdc11;", out v); break;
            case 12: CudaAsm.Emit("mov.f32 %0, kdc12;", out v); break;
            case 13: CudaAsm.Emit("mov.f32 %0, kdc13;", out v); break;
            case 14: CudaAsm.Emit("mov.f32 %0, kdc14;", out v); break;
            case 15: CudaAsm.Emit("mov.f32 %0, kdc15;", out v); break;
            case 16: CudaAsm.Emit("mov.f32 %0, kdc16;", out v); break;
            case 17: CudaAsm.Emit("mov.f32 %0, kdc17;", out v); break;
            case 18: CudaAsm.Emit("mov.f32 %0, kdc18;", out v); break;
            case 19: CudaAsm.Emit("mov.f32 %0, kdc19;", out v); break;
            case 20: CudaAsm.Emit("mov.f32 %0, kdc20;", out v); break;
            case 21: CudaAsm.Emit("mov.f32 %0, kdc21;", out v); break;
            case 22: CudaAsm.Emit("mov.f32 %0, kdc22;", out v); break;
            case 23: CudaAsm.Emit("mov.f32 %0, kdc23;", out v); break;
            case 24: CudaAsm.Emit("mov.f32 %0, kdc24;", out v); break;
            case 25: CudaAsm.Emit("mov.f32 %0, kdc25;", out v); break;
            case 26: CudaAsm.Emit("mov.f32 %0, kdc26;", out v); break;
            case 27: CudaAsm.Emit("mov.f32 %0, kdc27;", out v); break;
            case 28: CudaAsm.Emit("mov.f32 %0, kdc28;", out v); break;
            case 29: CudaAsm.Emit("mov.f32 %0, kdc29;", out v); break;
            case 30: CudaAsm.Emit("mov.f32 %0, kdc30;", out v); break;
            default: CudaAsm.Emit("mov.f32 %0, kdc31;", out v); break;
        }
        return v;
    }
}

/// <summary>A warp's 64 x 32 tile of C as 4 x 4 mma tiles of 16 x 8 (GEMM v16-v18): rows row + 16 i, columns col + 8 j.
/// Twice <see cref="WarpTile"/>'s rows for the same B fragments, so a step of 8 values of k loads 4 A and 4 B fragments
/// (24 shared reads per lane) for 16 mma, where WarpTile loads 16 for 8.
/// <para>On CUDA its 64 accumulators per lane are PTX registers kdw0..kdw63, declared by <see cref="Declare"/> and used
/// by inline PTX only, for WarpTile's reason. Elsewhere they are two emulated WarpTiles (rows 0-31 and 32-63).</para></summary>
public partial struct WarpTile64
{
    WarpTile top, bottom;

    /// <summary>Declares the PTX accumulators: call once at the start of the kernel.</summary>
    public static void Declare()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit(".reg .f32 kdw<64>;");
    }

    public static WarpTile64 Zero()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit(
                "mov.f32 kdw0, 0f00000000; mov.f32 kdw1, 0f00000000; mov.f32 kdw2, 0f00000000; mov.f32 kdw3, 0f00000000; mov.f32 kdw4, 0f00000000; mov.f32 kdw5, 0f00000000; mov.f32 kdw6, 0f00000000; mov.f32 kdw7, 0f00000000; mov.f32 kdw8, 0f00000000; mov.f32 kdw9, 0f00000000; mov.f32 kdw10, 0f00000000; mov.f32 kdw11, 0f00000000; mov.f32 kdw12, 0f00000000; mov.f32 kdw13, 0f00000000; mov.f32 kdw14, 0f00000000; mov.f32 kdw15, 0f00000000; " +
                "mov.f32 kdw16, 0f00000000; mov.f32 kdw17, 0f00000000; mov.f32 kdw18, 0f00000000; mov.f32 kdw19, 0f00000000; mov.f32 kdw20, 0f00000000; mov.f32 kdw21, 0f00000000; mov.f32 kdw22, 0f00000000; mov.f32 kdw23, 0f00000000; mov.f32 kdw24, 0f00000000; mov.f32 kdw25, 0f00000000; mov.f32 kdw26, 0f00000000; mov.f32 kdw27, 0f00000000; mov.f32 kdw28, 0f00000000; mov.f32 kdw29, 0f00000000; mov.f32 kdw30, 0f00000000; mov.f32 kdw31, 0f00000000; " +
                "mov.f32 kdw32, 0f00000000; mov.f32 kdw33, 0f00000000; mov.f32 kdw34, 0f00000000; mov.f32 kdw35, 0f00000000; mov.f32 kdw36, 0f00000000; mov.f32 kdw37, 0f00000000; mov.f32 kdw38, 0f00000000; mov.f32 kdw39, 0f00000000; mov.f32 kdw40, 0f00000000; mov.f32 kdw41, 0f00000000; mov.f32 kdw42, 0f00000000; mov.f32 kdw43, 0f00000000; mov.f32 kdw44, 0f00000000; mov.f32 kdw45, 0f00000000; mov.f32 kdw46, 0f00000000; mov.f32 kdw47, 0f00000000; " +
                "mov.f32 kdw48, 0f00000000; mov.f32 kdw49, 0f00000000; mov.f32 kdw50, 0f00000000; mov.f32 kdw51, 0f00000000; mov.f32 kdw52, 0f00000000; mov.f32 kdw53, 0f00000000; mov.f32 kdw54, 0f00000000; mov.f32 kdw55, 0f00000000; mov.f32 kdw56, 0f00000000; mov.f32 kdw57, 0f00000000; mov.f32 kdw58, 0f00000000; mov.f32 kdw59, 0f00000000; mov.f32 kdw60, 0f00000000; mov.f32 kdw61, 0f00000000; mov.f32 kdw62, 0f00000000; mov.f32 kdw63, 0f00000000;");
        return default;
    }

    // One m16n8k8 per mma tile (i, j) into accumulators kdw[4 (4 i + j)] .. + 3, operands as WarpTile's.
    const string Mma00 = WarpTile.Operands + "{kdw0, kdw1, kdw2, kdw3}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw0, kdw1, kdw2, kdw3}; }";
    const string Mma01 = WarpTile.Operands + "{kdw4, kdw5, kdw6, kdw7}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw4, kdw5, kdw6, kdw7}; }";
    const string Mma02 = WarpTile.Operands + "{kdw8, kdw9, kdw10, kdw11}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw8, kdw9, kdw10, kdw11}; }";
    const string Mma03 = WarpTile.Operands + "{kdw12, kdw13, kdw14, kdw15}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw12, kdw13, kdw14, kdw15}; }";
    const string Mma10 = WarpTile.Operands + "{kdw16, kdw17, kdw18, kdw19}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw16, kdw17, kdw18, kdw19}; }";
    const string Mma11 = WarpTile.Operands + "{kdw20, kdw21, kdw22, kdw23}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw20, kdw21, kdw22, kdw23}; }";
    const string Mma12 = WarpTile.Operands + "{kdw24, kdw25, kdw26, kdw27}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw24, kdw25, kdw26, kdw27}; }";
    const string Mma13 = WarpTile.Operands + "{kdw28, kdw29, kdw30, kdw31}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw28, kdw29, kdw30, kdw31}; }";
    const string Mma20 = WarpTile.Operands + "{kdw32, kdw33, kdw34, kdw35}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw32, kdw33, kdw34, kdw35}; }";
    const string Mma21 = WarpTile.Operands + "{kdw36, kdw37, kdw38, kdw39}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw36, kdw37, kdw38, kdw39}; }";
    const string Mma22 = WarpTile.Operands + "{kdw40, kdw41, kdw42, kdw43}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw40, kdw41, kdw42, kdw43}; }";
    const string Mma23 = WarpTile.Operands + "{kdw44, kdw45, kdw46, kdw47}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw44, kdw45, kdw46, kdw47}; }";
    const string Mma30 = WarpTile.Operands + "{kdw48, kdw49, kdw50, kdw51}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw48, kdw49, kdw50, kdw51}; }";
    const string Mma31 = WarpTile.Operands + "{kdw52, kdw53, kdw54, kdw55}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw52, kdw53, kdw54, kdw55}; }";
    const string Mma32 = WarpTile.Operands + "{kdw56, kdw57, kdw58, kdw59}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw56, kdw57, kdw58, kdw59}; }";
    const string Mma33 = WarpTile.Operands + "{kdw60, kdw61, kdw62, kdw63}, {ta0, ta1, ta2, ta3}, {tb0, tb1}, {kdw60, kdw61, kdw62, kdw63}; }";

    /// <summary>A stage of 16 values of k (two steps of 8) from k-major shared tiles whose k rows are
    /// <paramref name="pitch"/> floats apart. <paramref name="a"/> and <paramref name="b"/> start at this lane's first
    /// fragment value: k row t of the stage, column (warp's first row or column) + g. Every other read is at a constant
    /// offset from there, which ptxas folds into the loads.</summary>
    public static WarpTile64 Stage16(WarpTile64 w, ArrayView<float> a, ArrayView<float> b, int pitch, ArrayView<float> scratch)
    {
        w = Step(w, a, b, 0, pitch, scratch);
        return Step(w, a, b, 8 * pitch, pitch, scratch);
    }

    /// <summary>A stage of 16 values of k from fragment-packed tiles (GEMM v18): each lane's four A values of an mma tile
    /// and step of k are one Float4, and its B values of two neighbouring 8-column tiles another, so a step of 8 values
    /// of k is 6 16-byte shared reads instead of 24 4-byte ones. <paramref name="a"/> starts at this lane's Float4 of the
    /// warp's first mma tile in the stage's first step; its next tiles are 32 Float4s on, the second step 256 on.
    /// <paramref name="b"/> likewise, one Float4 per pair of tiles. (GEMM v18 lays the tiles out: see PackedSlotA.)</summary>
    public static WarpTile64 Stage16Packed(WarpTile64 w, ArrayView<Float4> a, ArrayView<Float4> b, ArrayView<float> scratch)
    {
        w = StepPacked(w, a, b, 0, scratch);
        return StepPacked(w, a, b, 8 * 32, scratch);
    }

    static WarpTile64 StepPacked(WarpTile64 w, ArrayView<Float4> a, ArrayView<Float4> b, int at, ArrayView<float> scratch)
    {
        Float4 b01 = b[at], b23 = b[at + 32];
        return Multiply(w, FragA.Of(a[at]), FragA.Of(a[at + 32]), FragA.Of(a[at + 64]), FragA.Of(a[at + 96]),
            new FragB { B0 = b01.X, B1 = b01.Y }, new FragB { B0 = b01.Z, B1 = b01.W },
            new FragB { B0 = b23.X, B1 = b23.Y }, new FragB { B0 = b23.Z, B1 = b23.W }, scratch);
    }

    /// <summary>Where GEMM v18 keeps element (r, k) of a stage's A tile (128 rows by 16 values of k): in Float4 (step of k,
    /// 16-row mma tile, lane g t) as value (r / 8) % 2 + 2 ((k % 8) / 4), with g = r % 8 and t = k % 4: the order of
    /// FragA's a0..a3. Rows 32 apart are 256 floats apart.</summary>
    public static int PackedSlotA(int r, int k) => (((k / 8) * 8 + r / 16) * 32 + (r % 8) * 4 + k % 4) * 4 + (r / 8) % 2 + 2 * ((k % 8) / 4);

    /// <summary>Where GEMM v18 keeps element (k, n) of a stage's B tile: in Float4 (step of k, pair of 8-column tiles,
    /// lane g t) as value 2 ((n % 16) / 8) + (k % 8) / 4, with g = n % 8 and t = k % 4: b0 and b1 of the pair's first
    /// tile, then of its second. Columns 32 apart are 256 floats apart.</summary>
    public static int PackedSlotB(int k, int n) => (((k / 8) * 8 + n / 16) * 32 + (n % 8) * 4 + k % 4) * 4 + 2 * ((n % 16) / 8) + (k % 8) / 4;

    /// <summary>A stage of 16 values of k for GEMM v19: A row-major ([m][k], FragA.RowsPitch floats a row) where
    /// <paramref name="aRows"/>, else k-major as Stage16's (V16Pitch: <paramref name="pitch"/>); B likewise ([n][k] where
    /// <paramref name="bRows"/>). Each view starts at this lane's first fragment value: (row g, k t) of a row-major tile,
    /// (k row t, column g) of a k-major one. aRows and bRows are constants at the call, so each entry keeps one path.</summary>
    public static WarpTile64 Stage16Vector(WarpTile64 w, ArrayView<float> a, ArrayView<float> b, int aRows, int bRows, int pitch, ArrayView<float> scratch)
    {
        w = StepVector(w, a, b, 0, aRows, bRows, pitch, scratch);
        return StepVector(w, a, b, 8, aRows, bRows, pitch, scratch);
    }

    const int RowTile = 16 * FragA.RowsPitch;   // floats between a warp's 16-row mma tiles of a row-major A
    const int RowTileB = 8 * FragA.RowsPitch;   // and between the 8-column mma tiles of a row-major B

    static WarpTile64 StepVector(WarpTile64 w, ArrayView<float> a, ArrayView<float> b, int k, int aRows, int bRows, int pitch, ArrayView<float> scratch)
        => Multiply(w, VectorA(a, 0, k, aRows, pitch), VectorA(a, 1, k, aRows, pitch), VectorA(a, 2, k, aRows, pitch), VectorA(a, 3, k, aRows, pitch),
            VectorB(b, 0, k, bRows, pitch), VectorB(b, 1, k, bRows, pitch), VectorB(b, 2, k, bRows, pitch), VectorB(b, 3, k, bRows, pitch), scratch);

    /// <summary>The fragment of 16-row mma tile i at step k (0 or 8).</summary>
    static FragA VectorA(ArrayView<float> a, int i, int k, int rows, int pitch)
        => rows != 0 ? FragA.LoadRows(a, i * RowTile + k) : FragA.LoadKMajor(a, 16 * i + k * pitch, pitch);

    /// <summary>The fragment of 8-column mma tile j at step k (0 or 8).</summary>
    static FragB VectorB(ArrayView<float> b, int j, int k, int rows, int pitch)
        => rows != 0 ? FragB.LoadRows(b, j * RowTileB + k) : FragB.LoadAt(b, 8 * j + k * pitch, pitch);

    /// <summary>One step of 8 values of k, whose first k row lies <paramref name="at"/> floats into the views (see Stage16).</summary>
    static WarpTile64 Step(WarpTile64 w, ArrayView<float> a, ArrayView<float> b, int at, int pitch, ArrayView<float> scratch)
        => Multiply(w, FragA.LoadKMajor(a, at, pitch), FragA.LoadKMajor(a, at + 16, pitch), FragA.LoadKMajor(a, at + 32, pitch),
            FragA.LoadKMajor(a, at + 48, pitch), FragB.LoadAt(b, at, pitch), FragB.LoadAt(b, at + 8, pitch),
            FragB.LoadAt(b, at + 16, pitch), FragB.LoadAt(b, at + 24, pitch), scratch);

    /// <summary>w + A B for A's four 16-row fragments and B's four 8-column fragments: mma tile (i, j) takes a_i and b_j.</summary>
    static WarpTile64 Multiply(WarpTile64 w, FragA a0, FragA a1, FragA a2, FragA a3, FragB b0, FragB b1, FragB b2, FragB b3,
        ArrayView<float> scratch)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(Mma00, a0.A0, a0.A1, a0.A2, a0.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma01, a0.A0, a0.A1, a0.A2, a0.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma02, a0.A0, a0.A1, a0.A2, a0.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma03, a0.A0, a0.A1, a0.A2, a0.A3, b3.B0, b3.B1);
            CudaAsm.Emit(Mma10, a1.A0, a1.A1, a1.A2, a1.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma11, a1.A0, a1.A1, a1.A2, a1.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma12, a1.A0, a1.A1, a1.A2, a1.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma13, a1.A0, a1.A1, a1.A2, a1.A3, b3.B0, b3.B1);
            CudaAsm.Emit(Mma20, a2.A0, a2.A1, a2.A2, a2.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma21, a2.A0, a2.A1, a2.A2, a2.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma22, a2.A0, a2.A1, a2.A2, a2.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma23, a2.A0, a2.A1, a2.A2, a2.A3, b3.B0, b3.B1);
            CudaAsm.Emit(Mma30, a3.A0, a3.A1, a3.A2, a3.A3, b0.B0, b0.B1);
            CudaAsm.Emit(Mma31, a3.A0, a3.A1, a3.A2, a3.A3, b1.B0, b1.B1);
            CudaAsm.Emit(Mma32, a3.A0, a3.A1, a3.A2, a3.A3, b2.B0, b2.B1);
            CudaAsm.Emit(Mma33, a3.A0, a3.A1, a3.A2, a3.A3, b3.B0, b3.B1);
            return w;
        }
        w.top = WarpTile.Emulated(w.top, a0, a1, b0, b1, b2, b3, scratch);
        w.bottom = WarpTile.Emulated(w.bottom, a2, a3, b0, b1, b2, b3, scratch);
        return w;
    }

    /// <summary>GEMM v20: a stage of 16 values of k (two steps of 8) with A row-major ([m][k], FragA.RowsPitch floats a row)
    /// read by <c>ldmatrix.x4</c>: one instruction gives a lane its four values of an mma tile's A fragment (four LDS in
    /// Stage16Vector), and a warp's 8 row addresses per matrix, 80 bytes apart, fall in 32 different banks. B is read
    /// as Stage16Vector reads it where k-major (<paramref name="bRows"/> 0: <paramref name="b"/> starts at this lane's
    /// first fragment value), or by ldmatrix too where row-major ([n][k]: one x4 gives two 8-column tiles' b0 and b1).
    /// <paramref name="aRow"/> and <paramref name="bRow"/>: this lane's ldmatrix row (LdsmRowA, LdsmRowB) of the warp's
    /// first tile in the stage, as float indices into the dynamic shared memory <paramref name="sh"/>. On CUDA each step
    /// is one inline-PTX block: its ldmatrix results go to PTX registers that only its mma read (ILGPU would give inline
    /// outputs local memory). Elsewhere ldmatrix is emulated through the scratch (LdsmEmulated) and the mma as
    /// always, so the lanes' row addresses are checked on the CPU; the PTX's tile offsets (1280 bytes: 16 rows of 80) are
    /// RowTile's.
    /// <para><paramref name="rowsPitch"/> (a constant at every call): the row-major rows' pitch, FragA.RowsPitch (80
    /// bytes) or, for GEMM v24's stages of 32 values of k, FragA.RowsPitch32 (144 bytes: 2304 between tiles), each with
    /// its own PTX blocks.</para></summary>
    public static WarpTile64 Stage16Ldsm(WarpTile64 w, ArrayView<float> sh, int aRow, int bRow, ArrayView<float> b, int bRows, int pitch,
        ArrayView<float> scratch, int rowsPitch = FragA.RowsPitch)
    {
        w = StepLdsm(w, sh, aRow, bRow, b, 0, bRows, pitch, scratch, rowsPitch);
        return StepLdsm(w, sh, aRow + 8, bRow + 8, b, 8, bRows, pitch, scratch, rowsPitch);
    }

    /// <summary>What LdsmStepAB's two ldmatrix of a row-major B give this lane off CUDA (TensorCore.LdsmEmulated): b0 and
    /// b1 of the warp's four 8-column tiles, whose rows lie <paramref name="rowsPitch"/> floats apart.</summary>
    static (FragB, FragB, FragB, FragB) LdsmEmulatedB(ArrayView<float> sh, int bRow, ArrayView<float> scratch, int rowsPitch = FragA.RowsPitch)
    {
        Float4 p = TensorCore.LdsmEmulated(sh, bRow, scratch), q = TensorCore.LdsmEmulated(sh, bRow + 16 * rowsPitch, scratch);
        return (new FragB { B0 = p.X, B1 = p.Y }, new FragB { B0 = p.Z, B1 = p.W }, new FragB { B0 = q.X, B1 = q.Y }, new FragB { B0 = q.Z, B1 = q.W });
    }

    /// <summary>This lane's ldmatrix row of an A tile (16 rows x 8 values of k, row-major, rows <paramref name="pitch"/>
    /// floats apart): matrix j = lane / 8 holds rows 8 (j % 2) .. + 7 at k 4 (j / 2) .. + 3 (a0, a1, a2, a3 in turn), and
    /// lane l names its row l % 8.</summary>
    public static int LdsmRowA(int lane, int pitch = FragA.RowsPitch) => ((lane & 7) + 8 * ((lane >> 3) & 1)) * pitch + 4 * (lane >> 4);

    /// <summary>This lane's ldmatrix row of two 8-column B tiles (16 rows of n x 8 values of k, row-major): matrix j
    /// holds tile j / 2's rows at k 4 (j % 2) .. + 3 (that tile's b0, then b1).</summary>
    public static int LdsmRowB(int lane, int pitch = FragA.RowsPitch) => ((lane & 7) + 8 * (lane >> 4)) * pitch + 4 * ((lane >> 3) & 1);

    static WarpTile64 StepLdsm(WarpTile64 w, ArrayView<float> sh, int aRow, int bRow, ArrayView<float> b, int k, int bRows, int pitch,
        ArrayView<float> scratch, int rowsPitch = FragA.RowsPitch)
    {
        if (CudaAsm.IsSupported && bRows != 0)
        {
            if (rowsPitch == FragA.RowsPitch) CudaAsm.Emit(LdsmStepAB, 4 * aRow, 4 * bRow);
            else CudaAsm.Emit(LdsmStepAB32, 4 * aRow, 4 * bRow);
            return w;
        }
        FragB b0, b1, b2, b3;
        if (bRows != 0) (b0, b1, b2, b3) = LdsmEmulatedB(sh, bRow, scratch, rowsPitch);   // off CUDA only
        else
        {
            b0 = FragB.LoadAt(b, k * pitch, pitch); b1 = FragB.LoadAt(b, 8 + k * pitch, pitch);
            b2 = FragB.LoadAt(b, 16 + k * pitch, pitch); b3 = FragB.LoadAt(b, 24 + k * pitch, pitch);
        }
        if (CudaAsm.IsSupported)
        {
            if (rowsPitch == FragA.RowsPitch) CudaAsm.Emit(LdsmStepA, 4 * aRow, b0.B0, b0.B1, b1.B0, b1.B1, b2.B0, b2.B1, b3.B0, b3.B1);
            else CudaAsm.Emit(LdsmStepA32, 4 * aRow, b0.B0, b0.B1, b1.B0, b1.B1, b2.B0, b2.B1, b3.B0, b3.B1);
            return w;
        }
        int tile = 16 * rowsPitch;
        FragA a0 = FragA.Of(TensorCore.LdsmEmulated(sh, aRow, scratch)), a1 = FragA.Of(TensorCore.LdsmEmulated(sh, aRow + tile, scratch));
        FragA a2 = FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 2 * tile, scratch)), a3 = FragA.Of(TensorCore.LdsmEmulated(sh, aRow + 3 * tile, scratch));
        return Multiply(w, a0, a1, a2, a3, b0, b1, b2, b3, scratch);
    }

    // One step of 8 values of k (GEMM v20): %0 this lane's A ldmatrix row as a byte offset into the dynamic shared
    // memory; the four A tiles 16 rows (1280 bytes) apart, A tile i in kla[4 i] .. + 3. LdsmStepA: B's fragments b0, b1 of
    // its four tiles in %1-%8 (k-major B, read as floats). LdsmStepAB: %1 this lane's B ldmatrix row (row-major B), two
    // tiles per ldmatrix, the pairs 16 rows apart. Mma tile (i, j) takes kla[4 i ..] and klb[2 j], klb[2 j + 1] into
    // kdw[4 (4 i + j)] .. + 3, as Multiply.
    const string LdsmMma = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
    const string LdsmLoadA = "{ .reg .u32 kda; .reg .b32 kla<16>, klb<8>; mov.u32 kda, __dyn_shared_alloca; add.u32 kda, kda, %0; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla0, kla1, kla2, kla3}, [kda]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla4, kla5, kla6, kla7}, [kda+1280]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla8, kla9, kla10, kla11}, [kda+2560]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla12, kla13, kla14, kla15}, [kda+3840]; ";
    const string LdsmMmas =
        LdsmMma + "{kdw0, kdw1, kdw2, kdw3}, {kla0, kla1, kla2, kla3}, {klb0, klb1}, {kdw0, kdw1, kdw2, kdw3}; " +
        LdsmMma + "{kdw4, kdw5, kdw6, kdw7}, {kla0, kla1, kla2, kla3}, {klb2, klb3}, {kdw4, kdw5, kdw6, kdw7}; " +
        LdsmMma + "{kdw8, kdw9, kdw10, kdw11}, {kla0, kla1, kla2, kla3}, {klb4, klb5}, {kdw8, kdw9, kdw10, kdw11}; " +
        LdsmMma + "{kdw12, kdw13, kdw14, kdw15}, {kla0, kla1, kla2, kla3}, {klb6, klb7}, {kdw12, kdw13, kdw14, kdw15}; " +
        LdsmMma + "{kdw16, kdw17, kdw18, kdw19}, {kla4, kla5, kla6, kla7}, {klb0, klb1}, {kdw16, kdw17, kdw18, kdw19}; " +
        LdsmMma + "{kdw20, kdw21, kdw22, kdw23}, {kla4, kla5, kla6, kla7}, {klb2, klb3}, {kdw20, kdw21, kdw22, kdw23}; " +
        LdsmMma + "{kdw24, kdw25, kdw26, kdw27}, {kla4, kla5, kla6, kla7}, {klb4, klb5}, {kdw24, kdw25, kdw26, kdw27}; " +
        LdsmMma + "{kdw28, kdw29, kdw30, kdw31}, {kla4, kla5, kla6, kla7}, {klb6, klb7}, {kdw28, kdw29, kdw30, kdw31}; " +
        LdsmMma + "{kdw32, kdw33, kdw34, kdw35}, {kla8, kla9, kla10, kla11}, {klb0, klb1}, {kdw32, kdw33, kdw34, kdw35}; " +
        LdsmMma + "{kdw36, kdw37, kdw38, kdw39}, {kla8, kla9, kla10, kla11}, {klb2, klb3}, {kdw36, kdw37, kdw38, kdw39}; " +
        LdsmMma + "{kdw40, kdw41, kdw42, kdw43}, {kla8, kla9, kla10, kla11}, {klb4, klb5}, {kdw40, kdw41, kdw42, kdw43}; " +
        LdsmMma + "{kdw44, kdw45, kdw46, kdw47}, {kla8, kla9, kla10, kla11}, {klb6, klb7}, {kdw44, kdw45, kdw46, kdw47}; " +
        LdsmMma + "{kdw48, kdw49, kdw50, kdw51}, {kla12, kla13, kla14, kla15}, {klb0, klb1}, {kdw48, kdw49, kdw50, kdw51}; " +
        LdsmMma + "{kdw52, kdw53, kdw54, kdw55}, {kla12, kla13, kla14, kla15}, {klb2, klb3}, {kdw52, kdw53, kdw54, kdw55}; " +
        LdsmMma + "{kdw56, kdw57, kdw58, kdw59}, {kla12, kla13, kla14, kla15}, {klb4, klb5}, {kdw56, kdw57, kdw58, kdw59}; " +
        LdsmMma + "{kdw60, kdw61, kdw62, kdw63}, {kla12, kla13, kla14, kla15}, {klb6, klb7}, {kdw60, kdw61, kdw62, kdw63}; ";
    const string LdsmStepA = LdsmLoadA +
        "mov.b32 klb0, %1; mov.b32 klb1, %2; mov.b32 klb2, %3; mov.b32 klb3, %4; mov.b32 klb4, %5; mov.b32 klb5, %6; mov.b32 klb6, %7; mov.b32 klb7, %8; " +
        LdsmMmas + "}";
    const string LdsmStepAB = LdsmLoadA +
        "{ .reg .u32 kdb; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %1; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {klb0, klb1, klb2, klb3}, [kdb]; ldmatrix.sync.aligned.m8n8.x4.shared.b16 {klb4, klb5, klb6, klb7}, [kdb+1280]; } " +
        LdsmMmas + "}";

    // The same at FragA.RowsPitch32 (GEMM v24): 16 rows of 144 bytes, 2304 bytes, between tiles.
    const string LdsmLoadA32 = "{ .reg .u32 kda; .reg .b32 kla<16>, klb<8>; mov.u32 kda, __dyn_shared_alloca; add.u32 kda, kda, %0; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla0, kla1, kla2, kla3}, [kda]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla4, kla5, kla6, kla7}, [kda+2304]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla8, kla9, kla10, kla11}, [kda+4608]; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {kla12, kla13, kla14, kla15}, [kda+6912]; ";
    const string LdsmStepA32 = LdsmLoadA32 +
        "mov.b32 klb0, %1; mov.b32 klb1, %2; mov.b32 klb2, %3; mov.b32 klb3, %4; mov.b32 klb4, %5; mov.b32 klb5, %6; mov.b32 klb6, %7; mov.b32 klb7, %8; " +
        LdsmMmas + "}";
    const string LdsmStepAB32 = LdsmLoadA32 +
        "{ .reg .u32 kdb; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %1; " +
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {klb0, klb1, klb2, klb3}, [kdb]; ldmatrix.sync.aligned.m8n8.x4.shared.b16 {klb4, klb5, klb6, klb7}, [kdb+2304]; } " +
        LdsmMmas + "}";

    /// <summary>Stores alpha times the tile from the PTX registers (CUDA only), where the whole tile lies inside C and
    /// C's rows take 8-byte stores: <paramref name="top"/> is the device address of this lane's first element
    /// (row + g, col + 2t), <paramref name="rowBytes"/> the distance between C's rows. Each lane writes its two columns
    /// of each mma tile as one st.global.v2. Storing through Get instead reads each accumulator through a local
    /// (ILGPU gives every inline-assembly output one) picked by a 64-way switch.</summary>
    public static void StoreInside(long top, long rowBytes, float alpha)
    {
        CudaAsm.Emit(StoreRows0, top, top + 8 * rowBytes, alpha);
        CudaAsm.Emit(StoreRows1, top + 16 * rowBytes, top + 24 * rowBytes, alpha);
        CudaAsm.Emit(StoreRows2, top + 32 * rowBytes, top + 40 * rowBytes, alpha);
        CudaAsm.Emit(StoreRows3, top + 48 * rowBytes, top + 56 * rowBytes, alpha);
    }

    // Mma tiles (i, 0..3): %0 and %1 the addresses of this lane's rows 16 i + g and 16 i + g + 8, %2 alpha; the tiles'
    // columns are 8 floats (32 bytes) apart.
    const string StoreHead = "{ .reg .f32 kx, ky; .reg .u64 kt, kb; cvta.to.global.u64 kt, %0; cvta.to.global.u64 kb, %1; ";
    const string StoreRows0 = StoreHead +
        "mul.f32 kx, kdw0, %2; mul.f32 ky, kdw1, %2; st.global.v2.f32 [kt+0], {kx, ky}; mul.f32 kx, kdw2, %2; mul.f32 ky, kdw3, %2; st.global.v2.f32 [kb+0], {kx, ky}; " +
        "mul.f32 kx, kdw4, %2; mul.f32 ky, kdw5, %2; st.global.v2.f32 [kt+32], {kx, ky}; mul.f32 kx, kdw6, %2; mul.f32 ky, kdw7, %2; st.global.v2.f32 [kb+32], {kx, ky}; " +
        "mul.f32 kx, kdw8, %2; mul.f32 ky, kdw9, %2; st.global.v2.f32 [kt+64], {kx, ky}; mul.f32 kx, kdw10, %2; mul.f32 ky, kdw11, %2; st.global.v2.f32 [kb+64], {kx, ky}; " +
        "mul.f32 kx, kdw12, %2; mul.f32 ky, kdw13, %2; st.global.v2.f32 [kt+96], {kx, ky}; mul.f32 kx, kdw14, %2; mul.f32 ky, kdw15, %2; st.global.v2.f32 [kb+96], {kx, ky}; }";
    const string StoreRows1 = StoreHead +
        "mul.f32 kx, kdw16, %2; mul.f32 ky, kdw17, %2; st.global.v2.f32 [kt+0], {kx, ky}; mul.f32 kx, kdw18, %2; mul.f32 ky, kdw19, %2; st.global.v2.f32 [kb+0], {kx, ky}; " +
        "mul.f32 kx, kdw20, %2; mul.f32 ky, kdw21, %2; st.global.v2.f32 [kt+32], {kx, ky}; mul.f32 kx, kdw22, %2; mul.f32 ky, kdw23, %2; st.global.v2.f32 [kb+32], {kx, ky}; " +
        "mul.f32 kx, kdw24, %2; mul.f32 ky, kdw25, %2; st.global.v2.f32 [kt+64], {kx, ky}; mul.f32 kx, kdw26, %2; mul.f32 ky, kdw27, %2; st.global.v2.f32 [kb+64], {kx, ky}; " +
        "mul.f32 kx, kdw28, %2; mul.f32 ky, kdw29, %2; st.global.v2.f32 [kt+96], {kx, ky}; mul.f32 kx, kdw30, %2; mul.f32 ky, kdw31, %2; st.global.v2.f32 [kb+96], {kx, ky}; }";
    const string StoreRows2 = StoreHead +
        "mul.f32 kx, kdw32, %2; mul.f32 ky, kdw33, %2; st.global.v2.f32 [kt+0], {kx, ky}; mul.f32 kx, kdw34, %2; mul.f32 ky, kdw35, %2; st.global.v2.f32 [kb+0], {kx, ky}; " +
        "mul.f32 kx, kdw36, %2; mul.f32 ky, kdw37, %2; st.global.v2.f32 [kt+32], {kx, ky}; mul.f32 kx, kdw38, %2; mul.f32 ky, kdw39, %2; st.global.v2.f32 [kb+32], {kx, ky}; " +
        "mul.f32 kx, kdw40, %2; mul.f32 ky, kdw41, %2; st.global.v2.f32 [kt+64], {kx, ky}; mul.f32 kx, kdw42, %2; mul.f32 ky, kdw43, %2; st.global.v2.f32 [kb+64], {kx, ky}; " +
        "mul.f32 kx, kdw44, %2; mul.f32 ky, kdw45, %2; st.global.v2.f32 [kt+96], {kx, ky}; mul.f32 kx, kdw46, %2; mul.f32 ky, kdw47, %2; st.global.v2.f32 [kb+96], {kx, ky}; }";
    const string StoreRows3 = StoreHead +
        "mul.f32 kx, kdw48, %2; mul.f32 ky, kdw49, %2; st.global.v2.f32 [kt+0], {kx, ky}; mul.f32 kx, kdw50, %2; mul.f32 ky, kdw51, %2; st.global.v2.f32 [kb+0], {kx, ky}; " +
        "mul.f32 kx, kdw52, %2; mul.f32 ky, kdw53, %2; st.global.v2.f32 [kt+32], {kx, ky}; mul.f32 kx, kdw54, %2; mul.f32 ky, kdw55, %2; st.global.v2.f32 [kb+32], {kx, ky}; " +
        "mul.f32 kx, kdw56, %2; mul.f32 ky, kdw57, %2; st.global.v2.f32 [kt+64], {kx, ky}; mul.f32 kx, kdw58, %2; mul.f32 ky, kdw59, %2; st.global.v2.f32 [kb+64], {kx, ky}; " +
        "mul.f32 kx, kdw60, %2; mul.f32 ky, kdw61, %2; st.global.v2.f32 [kt+96], {kx, ky}; mul.f32 kx, kdw62, %2; mul.f32 ky, kdw63, %2; st.global.v2.f32 [kb+96], {kx, ky}; }";

    /// <summary>This lane's accumulator e (0-3) of mma tile (i, j): element (row + 16 i + g + 8 (e / 2),
    /// col + 8 j + 2 t + e % 2) of the warp's tile.</summary>
    public readonly float Get(int i, int j, int e)
    {
        if (CudaAsm.IsSupported) return Ptx(4 * (4 * i + j) + e);
        return i < 2 ? top.Emulated(i, j, e) : bottom.Emulated(i - 2, j, e);
    }

    /// <summary>Register kdw{n} (each case names its register: the PTX text must be a constant).</summary>
    static float Ptx(int n)
    {
        float v;
        switch (n)
        {
            case 0: CudaAsm.Emit("mov.f32 %0, kdw0;", out v); break;
            case 1: CudaAsm.Emit("mov.f32 %0, kdw1;", out v); break;
            case 2: CudaAsm.Emit("mov.f32 %0, kdw2;", out v); break;
            case 3: CudaAsm.Emit("mov.f32 %0, kdw3;", out v); break;
            case 4: CudaAsm.Emit("mov.f32 %0, kdw4;", out v); break;
            case 5: CudaAsm.Emit("mov.f32 %0, kdw5;", out v); break;
            case 6: CudaAsm.Emit("mov.f32 %0, kdw6;", out v); break;
            case 7: CudaAsm.Emit("mov.f32 %0, kdw7;", out v); break;
            case 8: CudaAsm.Emit("mov.f32 %0, kdw8;", out v); break;
            case 9: CudaAsm.Emit("mov.f32 %0, kdw9;", out v); break;
            case 10: CudaAsm.Emit("mov.f32 %0, kdw10;", out v); break;
            case 11: CudaAsm.Emit("mov.f32 %0, kdw11;", out v); break;
            case 12: CudaAsm.Emit("mov.f32 %0, kdw12;", out v); break;
            case 13: CudaAsm.Emit("mov.f32 %0, kdw13;", out v); break;
            case 14: CudaAsm.Emit("mov.f32 %0, kdw14;", out v); break;
            case 15: CudaAsm.Emit("mov.f32 %0, kdw15;", out v); break;
            case 16: CudaAsm.Emit("mov.f32 %0, kdw16;", out v); break;
            case 17: CudaAsm.Emit("mov.f32 %0, kdw17;", out v); break;
            case 18: CudaAsm.Emit("mov.f32 %0, kdw18;", out v); break;
            case 19: CudaAsm.Emit("mov.f32 %0, kdw19;", out v); break;
            case 20: CudaAsm.Emit("mov.f32 %0, kdw20;", out v); break;
            case 21: CudaAsm.Emit("mov.f32 %0, kdw21;", out v); break;
            case 22: CudaAsm.Emit("mov.f32 %0, kdw22;", out v); break;
            case 23: CudaAsm.Emit("mov.f32 %0, kdw23;", out v); break;
            case 24: CudaAsm.Emit("mov.f32 %0, kdw24;", out v); break;
            case 25: CudaAsm.Emit("mov.f32 %0, kdw25;", out v); break;
            case 26: CudaAsm.Emit("mov.f32 %0, kdw26;", out v); break;
            case 27: CudaAsm.Emit("mov.f32 %0, kdw27;", out v); break;
            case 28: CudaAsm.Emit("mov.f32 %0, kdw28;", out v); break;
            case 29: CudaAsm.Emit("mov.f32 %0, kdw29;", out v); break;
            case 30: CudaAsm.Emit("mov.f32 %0, kdw30;", out v); break;
            case 31: CudaAsm.Emit("mov.f32 %0, kdw31;", out v); break;
            case 32: CudaAsm.Emit("mov.f32 %0, kdw32;", out v); break;
            case 33: CudaAsm.Emit("mov.f32 %0, kdw33;", out v); break;
            case 34: CudaAsm.Emit("mov.f32 %0, kdw34;", out v); break;
            case 35: CudaAsm.Emit("mov.f32 %0, kdw35;", out v); break;
            case 36: CudaAsm.Emit("mov.f32 %0, kdw36;", out v); break;
            case 37: CudaAsm.Emit("mov.f32 %0, kdw37;", out v); break;
            case 38: CudaAsm.Emit("mov.f32 %0, kdw38;", out v); break;
            case 39: CudaAsm.Emit("mov.f32 %0, kdw39;", out v); break;
            case 40: CudaAsm.Emit("mov.f32 %0, kdw40;", out v); break;
            case 41: CudaAsm.Emit("mov.f32 %0, kdw41;", out v); break;
            case 42: CudaAsm.Emit("mov.f32 %0, kdw42;", out v); break;
            case 43: CudaAsm.Emit("mov.f32 %0, kdw43;", out v); break;
            case 44: CudaAsm.Emit("mov.f32 %0, kdw44;", out v); break;
            case 45: CudaAsm.Emit("mov.f32 %0, kdw45;", out v); break;
            case 46: CudaAsm.Emit("mov.f32 %0, kdw46;", out v); break;
            case 47: CudaAsm.Emit("mov.f32 %0, kdw47;", out v); break;
            case 48: CudaAsm.Emit("mov.f32 %0, kdw48;", out v); break;
            case 49: CudaAsm.Emit("mov.f32 %0, kdw49;", out v); break;
            case 50: CudaAsm.Emit("mov.f32 %0, kdw50;", out v); break;
            case 51: CudaAsm.Emit("mov.f32 %0, kdw51;", out v); break;
            case 52: CudaAsm.Emit("mov.f32 %0, kdw52;", out v); break;
            case 53: CudaAsm.Emit("mov.f32 %0, kdw53;", out v); break;
            case 54: CudaAsm.Emit("mov.f32 %0, kdw54;", out v); break;
            case 55: CudaAsm.Emit("mov.f32 %0, kdw55;", out v); break;
            case 56: CudaAsm.Emit("mov.f32 %0, kdw56;", out v); break;
            case 57: CudaAsm.Emit("mov.f32 %0, kdw57;", out v); break;
            case 58: CudaAsm.Emit("mov.f32 %0, kdw58;", out v); break;
            case 59: CudaAsm.Emit("mov.f32 %0, kdw59;", out v); break;
            case 60: CudaAsm.Emit("mov.f32 %0, kdw60;", out v); break;
            case 61: CudaAsm.Emit("mov.f32 %0, kdw61;", out v); break;
            case 62: CudaAsm.Emit("mov.f32 %0, kdw62;", out v); break;
            default: CudaAsm.Emit("mov.f32 %0, kdw63;", out v); break;
        }
        return v;
    }
}

/// <summary>A lane's four accumulators of a 16 x 8 tile (see <see cref="TensorCore"/> for which element each is).</summary>
public struct MmaAcc
{
    public float C0, C1, C2, C3;
}

/// <summary>A lane's part of a 16 x 8 A tile.</summary>
public struct FragA
{
    public float A0, A1, A2, A3;

    /// <summary>From a row-major tile in shared memory: rows row .. row + 15, columns k .. k + 7, rows stride apart.</summary>
    public static FragA Load(ArrayView<float> tile, int row, int k, int stride)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int top = (row + g) * stride + k + t, bottom = top + 8 * stride;
        return new FragA { A0 = tile[top], A1 = tile[bottom], A2 = tile[top + 4], A3 = tile[bottom + 4] };
    }

    /// <summary>From a row-major tile ([m][k], rows <see cref="RowsPitch"/> floats apart; GEMM v19) through a view that
    /// starts at this lane's (row g, k t) of the tile: rows at offset i (a multiple of the pitch) .. + 15, k 0 .. 7. A lane
    /// reads rows g and g + 8, k t and t + 4; at a pitch of 20 a warp's 32 reads fall in 32 different banks.</summary>
    public static FragA LoadRows(ArrayView<float> at, int i)
        => new() { A0 = at[i], A1 = at[i + 8 * RowsPitch], A2 = at[i + 4], A3 = at[i + 8 * RowsPitch + 4] };

    /// <summary>GEMM v19's row-major rows (of A, or of a transposed B): a stage's 16 values of k and 4 of padding, 80
    /// bytes (16-byte copies stay aligned).</summary>
    public const int RowsPitch = 20;

    /// <summary>GEMM v24's rows: a stage's 32 values of k and 4 of padding, 144 bytes; 144 mod 128 = 16, so an ldmatrix's
    /// 8 rows still fall in 8 different 16-byte bank groups.</summary>
    public const int RowsPitch32 = 36;

    /// <summary>From a packed Float4 (GEMM v18): a0..a3 in order.</summary>
    public static FragA Of(Float4 v) => new() { A0 = v.X, A1 = v.Y, A2 = v.Z, A3 = v.W };

    /// <summary>From a k-major tile ([k][m], k rows pitch apart) through a view that starts at this lane's (k row t,
    /// column g) of the tile: rows at offsets i .. i + 15, k rows 0 .. 7. A lane reads k rows t and t + 4, columns g and
    /// g + 8; with pitch a multiple of 32 plus 8 a warp's 32 reads fall in 32 different banks.</summary>
    public static FragA LoadKMajor(ArrayView<float> at, int i, int pitch)
        => new() { A0 = at[i], A1 = at[i + 8], A2 = at[i + 4 * pitch], A3 = at[i + 4 * pitch + 8] };
}

/// <summary>A lane's part of an 8 x 8 B tile.</summary>
public struct FragB
{
    public float B0, B1;

    /// <summary>From a k-major tile in shared memory: rows k .. k + 7 (stride apart), columns col .. col + 7.</summary>
    public static FragB Load(ArrayView<float> tile, int k, int col, int stride)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int at = (k + t) * stride + col + g;
        return new FragB { B0 = tile[at], B1 = tile[at + 4 * stride] };
    }

    /// <summary>From a row-major tile ([n][k], rows FragA.RowsPitch floats apart; GEMM v19 with B transposed) through a view
    /// that starts at this lane's (row g, k t): rows at offset i (a multiple of the pitch) .. + 7, k 0 .. 7. A lane reads
    /// row g at k t and t + 4; a warp's 32 reads fall in 32 different banks.</summary>
    public static FragB LoadRows(ArrayView<float> at, int i) => new() { B0 = at[i], B1 = at[i + 4] };

    /// <summary>As Load, through a view that starts at this lane's (k row t, column g) of the tile: columns at offsets
    /// j .. j + 7.</summary>
    public static FragB LoadAt(ArrayView<float> bt, int j, int pitch) => new() { B0 = bt[j], B1 = bt[j + 4 * pitch] };
}
