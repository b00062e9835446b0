using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace KernelDiffusion.Kernels;

/// <summary>Floating-point operations and the fewest bytes a kernel must move. The roofline floor of a
/// launch is max(Flops / peak rate, Bytes / bandwidth); <see cref="Tf32"/> says the peak is the tensor cores' tf32
/// rate, not the fp32 FMA rate, and <see cref="Tf32Passes"/> how many tf32 products each multiply-add takes there.</summary>
public readonly record struct KernelCost(double Flops, double Bytes)
{
    public bool Tf32 { get; init; }

    /// <summary>tf32 products per multiply-add of a Tf32 cost: 3 for GEMM v21 (3xTF32), else 1 (0 reads as 1).</summary>
    public int Tf32Passes { get; init; }

    public static KernelCost operator +(KernelCost a, KernelCost b) => new(a.Flops + b.Flops, a.Bytes + b.Bytes)
        { Tf32 = a.Tf32 && b.Tf32, Tf32Passes = Math.Max(a.Tf32Passes, b.Tf32Passes) };
}

/// <summary>Launch configurations chosen per accelerator.</summary>
public static class Launch
{
    public static bool IsCpu(Accelerator acc) => acc.AcceleratorType == AcceleratorType.CPU;

    /// <summary>Whether groups of <paramref name="threads"/> threads in whole 32-lane warps run here (CUDA; the CPU
    /// accelerator only with a device built so): the kernels written per warp (tensor cores, attention v8) need them.</summary>
    public static bool Has32LaneGroups(Accelerator acc, int threads) => acc.WarpSize == 32 && acc.MaxNumThreadsPerGroup >= threads;

    /// <summary>Below this many work items per core, waking a second CPU thread costs more than it saves.</summary>
    const long CpuItemsPerCore = 4096;

    /// <summary>Grid-stride launch over <paramref name="work"/> items. The CPU accelerator runs every simulated
    /// thread as an OS thread, so there one single-thread group per core is fastest (measured: 6 ms per 1M SiLU with
    /// one group of one thread, 160 ms with 4096 groups of 16). GPUs get 256-thread groups, at most 8 per
    /// multiprocessor.</summary>
    /// <remarks>Pass the work in elements touched, not in loop iterations of a kernel whose iterations are heavy
    /// (a conv plane, a reduction row): the CPU splits by it.</remarks>
    public static KernelConfig GridStride(Accelerator acc, long work)
    {
        if (IsCpu(acc)) return new KernelConfig((int)Math.Clamp(work / CpuItemsPerCore, 1, acc.NumMultiprocessors), 1);
        int group = Math.Min(256, acc.MaxNumThreadsPerGroup);
        long groups = Math.Max(1, (work + group - 1) / group);
        long cap = Math.Max(1, acc.NumMultiprocessors * 8L);
        return new KernelConfig((int)Math.Min(groups, cap), group);
    }

    /// <summary>The side of the largest square group, halving from <paramref name="max"/>, whose side x side threads the
    /// accelerator allows (16 on GPUs for max 16; 1 on the CPU accelerator's 2-thread groups).</summary>
    public static int SquareSide(Accelerator acc, int max)
    {
        int side = max;
        while (side * side > acc.MaxNumThreadsPerGroup) side /= 2;
        return side;
    }

    /// <summary>Whether <paramref name="view"/> starts a multiple of <paramref name="bytes"/> into its buffer (buffers
    /// themselves start aligned), so a kernel may read or write it <paramref name="bytes"/> at a time from there. The
    /// offset is read through the interface without boxing the view (this runs at every launch that asks).</summary>
    public static bool Aligned<TView>(TView view, int bytes) where TView : struct, IContiguousArrayView => view.IndexInBytes % bytes == 0;

    /// <summary>The largest power-of-two group size up to <paramref name="wanted"/> the accelerator allows.</summary>
    public static int PowerOfTwoGroup(Accelerator acc, int wanted)
    {
        int g = 1;
        while (g * 2 <= wanted && g * 2 <= acc.MaxNumThreadsPerGroup) g *= 2;
        return g;
    }
}

/// <summary>Dynamic shared memory past 48 KB a group. CUDA grants a kernel more only once its limit is raised with the
/// driver's <c>cuFuncSetAttribute</c> (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), which ILGPU 1.5.3 never
/// calls, up to the device's opt-in maximum (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 227 KB on an H100
/// or H200). Attention v4 loads its kernels through <see cref="Raise"/> and sizes its tiles by <see cref="MaxBytes"/>.
/// Elsewhere (OpenCL, the CPU accelerator, a driver without the call) the limit stays 48 KB.</summary>
public static class SharedMemoryLimit
{
    public const int DefaultBytes = 48 * 1024;
    const int FuncSharedSizeBytes = 1, FuncMaxDynamicSharedSizeBytes = 8;   // CUfunction_attribute
    const int DeviceMaxSharedPerBlockOptIn = 97;                             // CUdevice_attribute

    delegate int FuncSetAttribute(IntPtr function, int attribute, int value);
    delegate int FuncGetAttribute(out int value, int attribute, IntPtr function);

    static readonly Lazy<(FuncSetAttribute Set, FuncGetAttribute Get)?> Driver = new(() =>
    {
        string name = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(name, out var lib)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "cuFuncSetAttribute", out var set)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "cuFuncGetAttribute", out var get))
            return null;
        return (System.Runtime.InteropServices.Marshal.GetDelegateForFunctionPointer<FuncSetAttribute>(set),
            System.Runtime.InteropServices.Marshal.GetDelegateForFunctionPointer<FuncGetAttribute>(get));
    });

    static readonly ConditionalWeakTable<Accelerator, StrongBox<int>> Max = new();

    /// <summary>The most shared memory, in bytes, a group of a kernel loaded through <see cref="Raise"/> may use here.</summary>
    public static int MaxBytes(Accelerator acc) => Max.GetValue(acc, a => new StrongBox<int>(
        a is ILGPU.Runtime.Cuda.CudaAccelerator cuda && Driver.Value != null
            ? Math.Max(DefaultBytes, ILGPU.Runtime.Cuda.CudaAPI.CurrentAPI.GetDeviceAttribute(
                (ILGPU.Runtime.Cuda.DeviceAttributeKind)DeviceMaxSharedPerBlockOptIn, cuda.DeviceId))
            : DefaultBytes)).Value;

    /// <summary>Raises the CUDA kernel behind <paramref name="launcher"/> (a LoadStreamKernel delegate) to take dynamic
    /// shared memory up to MaxBytes less its static shared memory; elsewhere returns it unchanged. Throws, naming the
    /// driver's error, if the driver refuses.</summary>
    public static T Raise<T>(Accelerator acc, T launcher, string name) where T : Delegate
    {
        int bytes = MaxBytes(acc);
        if (bytes <= DefaultBytes || acc is not ILGPU.Runtime.Cuda.CudaAccelerator) return launcher;
        var kernel = launcher.GetKernel() as ILGPU.Runtime.Cuda.CudaKernel
            ?? throw new InvalidOperationException($"{name}: no CUDA kernel behind its launcher");
        var (set, get) = Driver.Value!.Value;
        int error = get(out int staticBytes, FuncSharedSizeBytes, kernel.FunctionPtr);
        if (error == 0) error = set(kernel.FunctionPtr, FuncMaxDynamicSharedSizeBytes, bytes - staticBytes);
        if (error != 0)
            throw new InvalidOperationException($"{name}: the CUDA driver refused {bytes - staticBytes} bytes of dynamic shared memory (cuFuncSetAttribute, CUDA error {error})");
        return launcher;
    }
}

/// <summary>Loads each kernel once per accelerator: loading compiles, which is expensive. Every launch site fetches
/// its kernel here right before launching it once, so <see cref="LaunchesByKernel"/> counts kernel launches.</summary>
public static class KernelCache
{
    static readonly ConditionalWeakTable<Accelerator, ConcurrentDictionary<string, Delegate>> Loaded = new();
    static readonly ConcurrentDictionary<string, long> launchesByKernel = new();

    /// <summary>Launches since the process started, per kernel key ("conv2d.v4.forward", "adam.adamw", ...).</summary>
    public static Dictionary<string, long> LaunchesByKernel() => new(launchesByKernel);

    /// <summary>All kernel launches since the process started.</summary>
    public static long Launches => launchesByKernel.Values.Sum();

    /// <summary>Counts a stream operation that is not one of our kernels (a device-to-device copy) with the launches:
    /// it costs a launch's latency too.</summary>
    public static void Count(string key) => launchesByKernel.AddOrUpdate(key, 1, (_, n) => n + 1);

    public static T Get<T>(Accelerator acc, string key, Func<Accelerator, T> load) where T : Delegate
    {
        launchesByKernel.AddOrUpdate(key, 1, (_, n) => n + 1);
        return (T)Loaded.GetOrCreateValue(acc).GetOrAdd(key, _ => load(acc));
    }
}

/// <summary>Launch bounds of a kernel entry method (PTX .maxntid and .minnctapersm): with at most MaxThreads threads a
/// group and MinGroups groups resident per multiprocessor, ptxas keeps the kernel within 65536 / (MaxThreads MinGroups)
/// registers a thread. For kernels that would otherwise take a few registers too many for the occupancy they were
/// designed for (GEMM v10: 131 without, 112 with (256, 2)). It takes effect only where a kernel is loaded with
/// <see cref="Of"/>: the register-tiled launchers of Gemm.Run and Conv2d.Run (every version they load), and kd check's
/// offline compile (every kernel). OfflineCompileTests checks that it reaches the PTX.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class LaunchBoundsAttribute(int maxThreads, int minGroups) : Attribute
{
    public int MaxThreads { get; } = maxThreads;
    public int MinGroups { get; } = minGroups;

    /// <summary>The specialization a kernel method asks for, its thread bound cut to what the accelerator's groups
    /// hold (null: any); Empty without the attribute.</summary>
    public static KernelSpecialization Of(Delegate kernel, int? maxGroupThreads = null) => Of(kernel.Method, maxGroupThreads);

    public static KernelSpecialization Of(System.Reflection.MethodInfo method, int? maxGroupThreads = null)
        => method.GetCustomAttributes(typeof(LaunchBoundsAttribute), false) is [LaunchBoundsAttribute b]
            ? new KernelSpecialization(Math.Min(b.MaxThreads, maxGroupThreads ?? b.MaxThreads), b.MinGroups)
            : KernelSpecialization.Empty;
}

/// <summary>A kernel version that cannot run on this accelerator or at this shape (tensor cores without 32-lane warps,
/// a head too large for attention v3's shared memory): another version can. kd bench leaves such a version out of a
/// case instead of reporting an error.</summary>
public sealed class VersionNotApplicableException(string message) : ArgumentException(message);

/// <summary>shfl.sync.bfly through inline PTX, on CUDA only (callers check CudaAsm.IsSupported and take another path
/// elsewhere: ILGPU's own warp shuffles do not compile for OpenCL).</summary>
public static class WarpXor
{
    /// <summary>x of lane (this lane xor <paramref name="mask"/>: 1, 2, 4, 8 or 16, a constant at each call) of a 32-lane
    /// warp, every lane taking part.</summary>
    public static float Shuffle(float x, int mask)
    {
        float y;
        switch (mask)
        {
            case 1: CudaAsm.Emit("shfl.sync.bfly.b32 %0, %1, 1, 31, -1;", out y, x); break;
            case 2: CudaAsm.Emit("shfl.sync.bfly.b32 %0, %1, 2, 31, -1;", out y, x); break;
            case 4: CudaAsm.Emit("shfl.sync.bfly.b32 %0, %1, 4, 31, -1;", out y, x); break;
            case 8: CudaAsm.Emit("shfl.sync.bfly.b32 %0, %1, 8, 31, -1;", out y, x); break;
            default: CudaAsm.Emit("shfl.sync.bfly.b32 %0, %1, 16, 31, -1;", out y, x); break;
        }
        return y;
    }
}

/// <summary>Deterministic sums over a group of threads (power-of-two groups): a shared-memory tree, no float atomics.</summary>
public static class GroupTree
{
    /// <summary>Sum of every thread's v, returned to all threads; <paramref name="sh"/> holds at least a float per thread.
    /// Every thread of the group must call it (it has barriers).</summary>
    public static float Sum(ArrayView<float> sh, float v)
    {
        sh[Group.IdxX] = v;
        SumRows(sh, 1);
        float r = sh[0];
        Group.Barrier();
        return r;
    }

    /// <summary>Adds each of <paramref name="rows"/> rows of sh (a float per thread each, row r at r x group size) into
    /// its first float, all rows in one tree: log2(group size) steps, each step's additions spread over every thread (a
    /// tree per row would take that many barriers per row). Every thread must call it; it starts and ends with a barrier.</summary>
    public static void SumRows(ArrayView<float> sh, int rows)
    {
        int threads = Group.DimX, shift = 0;
        while ((2 << shift) < threads) shift++;   // half = 1 << shift = threads / 2
        Group.Barrier();
        for (int half = threads >> 1; half > 0; half >>= 1, shift--)
        {
            for (int e = Group.IdxX; e < rows << shift; e += threads)
            {
                int r = e >> shift, i = e & (half - 1);
                sh[r * threads + i] += sh[r * threads + i + half];
            }
            Group.Barrier();
        }
    }
}

/// <summary>Float64 helpers shared by the CPU references.</summary>
public static class Ref
{
    public static double Silu(double x) => x / (1 + Math.Exp(-x));
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}
