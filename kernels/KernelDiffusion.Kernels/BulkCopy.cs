using ILGPU;
using ILGPU.Runtime.Cuda;

namespace KernelDiffusion.Kernels;

/// <summary>Bulk copies (sm_90, <c>cp.async.bulk</c>): one instruction copies a whole row (a multiple of 16 bytes) from
/// global to shared memory on the copy engine TMA uses, outside the load pipe, and completes on an mbarrier in shared
/// memory, which counts the bytes that land (GEMM v22). Nsight Compute found each of v19's and v20's 16-byte cp.async
/// copies costing 14-15 shared wavefronts a warp in the load pipe, more than the fragment reads (bench/NOTES.md,
/// "Tensor cores", GEMM v20); a bulk copy writes shared memory without passing through it.
/// <para>The protocol, per stage buffer: thread 0 arrives on the buffer's mbarrier announcing the stage's bytes
/// (<see cref="Expect"/>), each copying thread issues its rows (<see cref="Row"/>), and every thread that reads the
/// buffer waits for the barrier's phase (<see cref="Wait"/>); the phase's parity flips with each use of the buffer.</para>
/// <para>On CUDA through inline PTX (the kernel needs <c>[PtxTarget(9, 0)]</c>); the barriers and copies name the dynamic
/// shared memory (<c>__dyn_shared_alloca</c>) at byte offsets, as <see cref="AsyncCopy"/> does. Elsewhere the copies
/// happen at once and each barrier is two ints, the phases armed and the byte balance, which <see cref="Wait"/> checks:
/// the emulation fails where the PTX would hang (bytes announced that never land) or race (a parity that passes at
/// once), instead of only copying.</para></summary>
public static class BulkCopy
{
    /// <summary>Ints (4 bytes each) a barrier takes: an mbarrier is 8 bytes, 8-aligned.</summary>
    public const int BarrierInts = 2;

    /// <summary>Thread 0, once before any use: sets barrier <paramref name="bar"/> (an int index into the dynamic shared
    /// memory) to expect one arrival a phase. A group barrier must follow before any thread uses it.</summary>
    public static void Init(ArrayView<int> bars, int bar)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("{ .reg .u32 kdb; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %0; mbarrier.init.shared::cta.b64 [kdb], 1; }", 4 * bar);
            return;
        }
        bars[bar] = 0;
        bars[bar + 1] = 0;
    }

    /// <summary>Thread 0, after <see cref="Init"/>: makes the initialised barriers visible to the copy engine.</summary>
    public static void FenceInit()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("fence.mbarrier_init.release.cluster;");
    }

    /// <summary>Thread 0: arrives on <paramref name="bar"/>, announcing <paramref name="bytes"/> bytes of copies that will
    /// complete on it; the phase completes when they have all landed.</summary>
    public static void Expect(ArrayView<int> bars, int bar, int bytes)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("{ .reg .u32 kdb; .reg .b64 kdst; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %0; " +
                "mbarrier.arrive.expect_tx.shared::cta.b64 kdst, [kdb], %1; }", 4 * bar, bytes);
            return;
        }
        bars[bar]++;
        Atomic.Add(ref bars[bar + 1], -bytes);
    }

    /// <summary>Copies src[at .. at + floats - 1] into the dynamic shared memory dst[slot ..], completing on
    /// <paramref name="bar"/>. <paramref name="floats"/> a multiple of 4; both ends 16-byte aligned (at and slot multiples
    /// of 4, src's address 16-aligned). <paramref name="srcAddress"/> is src's DeviceAddress.</summary>
    public static void Row(ArrayView<float> dst, int slot, ArrayView<float> src, long srcAddress, int at, int floats, ArrayView<int> bars, int bar)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(RowPtx, 4 * slot, srcAddress + 4L * at, 4 * floats, 4 * bar);
            return;
        }
        for (int i = 0; i < floats; i++) dst[slot + i] = src[at + i];
        Atomic.Add(ref bars[bar + 1], 4 * floats);
    }

    // %0: the destination's byte offset into the dynamic shared memory; %1: the source's device address; %2: bytes; %3:
    // the barrier's byte offset.
    const string RowPtx = "{ .reg .u32 kdd, kdb; .reg .u64 kds; mov.u32 kdd, __dyn_shared_alloca; add.u32 kdb, kdd, %3; add.u32 kdd, kdd, %0; " +
        "cvta.to.global.u64 kds, %1; cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [kdd], [kds], %2, [kdb]; }";

    /// <summary>Waits until the phase of <paramref name="bar"/> with parity <paramref name="parity"/> has completed: its
    /// copies are then visible to this thread. Returns false if it has not after <see cref="WaitTries"/> tries, so a
    /// protocol slip on a GPU fails the kernel's checks instead of hanging the process (and everything queued after it).
    /// Elsewhere, called after a group barrier (every emulated copy done), returns whether the protocol holds: every
    /// announced byte landed and no more, and the phase waited for is the one armed last (an odd count of arms for parity
    /// 0, even for 1).</summary>
    public static bool Wait(ArrayView<int> bars, int bar, int parity)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit(WaitPtx, out int done, 4 * bar, parity);
            return done != 0;
        }
        return bars[bar + 1] == 0 && (bars[bar] & 1) != parity;
    }

    /// <summary>Tries of <see cref="Wait"/> before it gives up (each may suspend the thread for a while first).</summary>
    public const int WaitTries = 1 << 16;

    // %0: 1 if the phase completed, 0 if it gave up; %1: the barrier's byte offset; %2: the parity. Labels inside braces
    // are local to the block, so the block may be inlined more than once.
    const string WaitPtx = "{ .reg .pred kdp; .reg .u32 kdb, kdn; mov.u32 kdb, __dyn_shared_alloca; add.u32 kdb, kdb, %1; mov.u32 kdn, 0; " +
        "KD_WAIT: mbarrier.try_wait.parity.shared::cta.b64 kdp, [kdb], %2; @kdp bra KD_DONE; " +
        "add.u32 kdn, kdn, 1; setp.lt.u32 kdp, kdn, 65536; @kdp bra KD_WAIT; KD_DONE: selp.u32 %0, 1, 0, kdp; }";

    /// <summary>Orders this thread's earlier writes to shared memory by the generic proxy (cp.async, stores) before later
    /// bulk copies into the same bytes (the async proxy). A group barrier must follow before the bulk copies issue.</summary>
    public static void FenceProxy()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("fence.proxy.async.shared::cta;");
    }
}
