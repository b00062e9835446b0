using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace KernelDiffusion.Kernels;

/// <summary>The PTX target a kernel's inline PTX needs, where that is newer than the sm_80 ILGPU 1.5.3 writes into every
/// kernel (its CudaCapabilityContext caps <c>.target</c> there whatever the card). GEMM v22's bulk copies
/// (<see cref="BulkCopy"/>) are sm_90 instructions, which the CUDA driver refuses under <c>.target sm_80</c>. Such a
/// kernel is compiled by the accelerator's own PTX backend, its <c>.target</c> line rewritten, and loaded from that text
/// (<see cref="PtxTarget.LoadStreamKernel"/>); kd check's offline compile rewrites it the same way.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PtxTargetAttribute(int major, int minor) : Attribute
{
    public int Major { get; } = major;
    public int Minor { get; } = minor;
    public string Target => $"sm_{Major}{Minor}";
}

public static class PtxTarget
{
    /// <summary>The target <paramref name="kernel"/> asks for (<c>sm_90</c>), or null when ILGPU's own will do.</summary>
    public static string? Of(MethodInfo kernel) => kernel.GetCustomAttribute<PtxTargetAttribute>()?.Target;

    /// <summary>Whether this accelerator runs kernels that ask for compute capability <paramref name="major"/>.
    /// <paramref name="minor"/>: a CUDA card of that architecture or newer; every other accelerator runs their
    /// C# (the emulation the inline PTX sits beside).</summary>
    public static bool Reaches(Accelerator acc, int major, int minor)
        => acc is not CudaAccelerator cuda || cuda.Architecture >= new CudaArchitecture(major, minor);

    /// <summary><paramref name="ptx"/> with its <c>.target</c> directive set to <paramref name="target"/>. Throws if the
    /// text has no such directive, so a change in ILGPU's output cannot pass silently.</summary>
    public static string Retarget(string ptx, string target)
    {
        var m = TargetDirective.Match(ptx);
        if (!m.Success) throw new InvalidOperationException($"no .target directive in the PTX to set to {target}");
        return ptx[..m.Index] + m.Groups[1].Value + ".target " + target + ptx[(m.Index + m.Length)..];
    }

    /// <summary>The architecture a PTX text's <c>.target</c> directive names (<c>sm_80</c>), or null where it has none.</summary>
    public static string? TargetOf(string ptx) => TargetDirective.Match(ptx) is { Success: true } m ? m.Groups[2].Value : null;

    static readonly Regex TargetDirective = new(@"^([ \t]*)\.target[ \t]+(sm_\d+[a-z]?)", RegexOptions.Multiline);

    /// <summary><paramref name="compiled"/> with its PTX text replaced: PTXCompiledKernel's constructor is internal, and so
    /// is CompiledKernel.EntryPoint, which it takes; both are reached by reflection (ILGPU 1.5.3).</summary>
    public static PTXCompiledKernel WithAssembly(PTXCompiledKernel compiled, string ptx)
    {
        var entryPoint = typeof(CompiledKernel).GetProperty("EntryPoint", BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(compiled)
            ?? throw new InvalidOperationException("ILGPU's CompiledKernel.EntryPoint was not found (an ILGPU other than 1.5.3?)");
        var ctor = typeof(PTXCompiledKernel).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic)
            .SingleOrDefault(c => c.GetParameters().Length == 4)
            ?? throw new InvalidOperationException("ILGPU's PTXCompiledKernel constructor was not found (an ILGPU other than 1.5.3?)");
        return (PTXCompiledKernel)ctor.Invoke([compiled.Context, entryPoint, compiled.Info, ptx]);
    }

    /// <summary>As ILGPU's LoadStreamKernel for an explicitly grouped kernel of eight parameters (the default stream), but a
    /// kernel with a <see cref="PtxTargetAttribute"/> is loaded on CUDA from its PTX retargeted. Elsewhere, and for
    /// kernels without the attribute, ILGPU's own loader.</summary>
    public static Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> LoadStreamKernel<T1, T2, T3, T4, T5, T6, T7, T8>(Accelerator acc,
        Action<T1, T2, T3, T4, T5, T6, T7, T8> entry, KernelSpecialization specialization)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct
    {
        string? target = Of(entry.Method);
        if (target == null || acc is not CudaAccelerator cuda) return acc.LoadStreamKernel(entry, specialization);
        var compiled = (PTXCompiledKernel)cuda.Backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(entry.Method), specialization);
        var kernel = cuda.LoadKernel(WithAssembly(compiled, Retarget(compiled.PTXAssembly, target)));
        var launch = kernel.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8>>();
        // A lambda over the inner launcher, as ILGPU's own: Kernel.GetKernel finds the kernel behind it (SharedMemoryLimit.Raise).
        return (config, a1, a2, a3, a4, a5, a6, a7, a8) => launch(acc.DefaultStream, config, a1, a2, a3, a4, a5, a6, a7, a8);
    }
}
