using System.Reflection;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

/// <summary>Compiles every kernel with ILGPU's real compiler (IL frontend, IR passes and the PTX or OpenCL C code
/// generator) without a device. The CPU accelerator runs a kernel's .NET method as it is, so it accepts C# that the
/// GPU backends reject; this catches that on a machine without CUDA.
/// <para>How: ILGPU 1.5.3's backends are public classes whose constructors need no device. A
/// <see cref="CudaAccelerator"/> builds <c>new PTXBackend(context, new CudaCapabilityContext(arch), arch, isa, nvvm)</c>
/// and an OpenCL accelerator <c>new CLBackend(context, capabilities, vendor, clStdVersion)</c>; we build the same
/// here and call <see cref="Backend.Compile(in EntryPointDescription, in KernelSpecialization)"/> with what
/// <c>LoadStreamKernel</c> passes (<see cref="EntryPointDescription.FromExplicitlyGroupedKernel"/>, and the kernel's
/// <see cref="LaunchBoundsAttribute"/> if it has one, else <see cref="KernelSpecialization.Empty"/>). No driver is called: that is only in the accelerator's
/// <c>LoadKernel(CompiledKernel)</c>.</para>
/// <para>The driver's own step: on the GPU the CUDA driver assembles the PTX at load. <see cref="Ptxas"/> does that
/// offline when a ptxas is at hand (scripts/get-ptxas.sh), which catches an invalid instruction inside inline PTX
/// (<c>CudaAsm</c>) and shows each kernel's registers and spills. The OpenCL C is not built by an OpenCL compiler,
/// so an OpenCL C compiler quirk still only shows on the device.</para></summary>
public static class OfflineCompile
{
    /// <summary>The PTX target: what the lent H200 gave (SM_90, driver 13.0, hence PTX ISA 8.8). ILGPU caps the
    /// emitted <c>.target</c> at sm_80 whatever the card (CudaCapabilityContext.TargetArchitecture).</summary>
    public static readonly CudaArchitecture PtxArchitecture = CudaArchitecture.SM_90;
    public static readonly CudaInstructionSet PtxInstructionSet = CudaInstructionSet.ISA_88;

    public static IReadOnlyList<string> Targets { get; } = ["ptx", "opencl"];

    /// <summary>Every kernel entry method: the static void methods of KernelDiffusion.Kernels whose name ends in
    /// "Kernel" (each is what a LoadStreamKernel call loads; Dropout's is named just "Kernel").</summary>
    public static IReadOnlyList<MethodInfo> KernelMethods() =>
        typeof(Launch).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(Launch).Namespace && !t.IsDefined(typeof(CompilerGeneratedAttribute), false))
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && m.Name.EndsWith("Kernel", StringComparison.Ordinal)
                && !m.Name.Contains('<') && !m.IsGenericMethodDefinition)
            .OrderBy(m => m.DeclaringType!.Name, StringComparer.Ordinal).ThenBy(m => m.Name, StringComparer.Ordinal)
            .ToList();

    public static string NameOf(MethodInfo m) => $"{m.DeclaringType!.Name}.{m.Name}";

    /// <summary>Compiles every kernel for <paramref name="target"/> ("ptx" or "opencl"). Ok results carry the size of
    /// the generated code (and, for PTX, how many lines touch .local memory) and the code itself; failures the
    /// compiler's exception chain. When <paramref name="dumpDirectory"/> is set, each kernel's code is written there
    /// (Type.Method.ptx/.cl).</summary>
    public static IReadOnlyList<(string Kernel, bool Ok, string Message, string? Code)> CompileAll(string target, string? dumpDirectory = null,
        string? filter = null, IReadOnlyCollection<string>? exclude = null) =>
        Compile(target, KernelMethods().Where(m => KernelChecks.Selected(NameOf(m), filter, exclude)), dumpDirectory);

    /// <summary>Compiles the given explicitly grouped kernel methods (as LoadStreamKernel would) for <paramref name="target"/>.</summary>
    public static IReadOnlyList<(string Kernel, bool Ok, string Message, string? Code)> Compile(string target, IEnumerable<MethodInfo> kernels,
        string? dumpDirectory = null)
    {
        target = target.Trim().ToLowerInvariant();
        if (!Targets.Contains(target)) throw new KdException($"compile: unknown target '{target}': use ptx or opencl");
        if (dumpDirectory != null) Directory.CreateDirectory(dumpDirectory);
        var results = new List<(string, bool, string, string?)>();
        (Context Context, Backend Backend)? current = null;
        try
        {
            foreach (var m in kernels)
            {
                string name = NameOf(m);
                current ??= Create(target);
                try
                {
                    var compiled = current.Value.Backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(m), LaunchBoundsAttribute.Of(m));
                    var (code, ext) = compiled switch
                    {
                        // A kernel whose inline PTX needs a newer target is loaded retargeted (PtxTarget): so is it assembled.
                        PTXCompiledKernel p => (PtxTarget.Of(m) is { } sm ? PtxTarget.Retarget(p.PTXAssembly, sm) : p.PTXAssembly, "ptx"),
                        CLCompiledKernel c => (c.Source, "cl"),
                        _ => (compiled.ToString() ?? "", "txt"),
                    };
                    if (dumpDirectory != null) File.WriteAllText(Path.Combine(dumpDirectory, $"{name}.{ext}"), code);
                    results.Add((name, true, Describe(code, ext), code));
                }
                catch (Exception e)
                {
                    results.Add((name, false, Chain(e), null));
                    // A failed compile can leave the context's IR in a state that makes later compiles fail too:
                    // start the next kernel on a fresh context.
                    Dispose(current.Value);
                    current = null;
                }
            }
        }
        finally
        {
            if (current != null) Dispose(current.Value);
        }
        return results;
    }

    /// <summary>The context ComputeDevice creates, less its devices (the backend needs none). EnableAlgorithms matters:
    /// it registers the intrinsics of ILGPU.Algorithms (group/warp reductions) with the context.</summary>
    static (Context, Backend) Create(string target)
    {
        var context = Context.Create(b => b.AutoAssertions().AutoIOOperations().EnableAlgorithms());
        try
        {
            Backend backend = target == "ptx"
                ? new PTXBackend(context, new CudaCapabilityContext(PtxArchitecture), PtxArchitecture, PtxInstructionSet, null)
                // An OpenCL C 2.0 device with every optional capability ILGPU knows (like the PoCL CPU device the GPU
                // machine lists): a kernel that needs one the real device lacks fails only there.
                : new CLBackend(context,
                    new CLCapabilityContext(float16: true, float64: true, genericAddressSpace: true, int64_Atomics: true, subGroups: true),
                    CLDeviceVendor.Other, CLCVersion.CL20);
            return (context, backend);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    static void Dispose((Context Context, Backend Backend) c)
    {
        c.Backend.Dispose();
        c.Context.Dispose();
    }

    static string Describe(string code, string ext)
    {
        int lines = code.Count(ch => ch == '\n');
        if (ext != "ptx") return $"{lines} lines of OpenCL C";
        int local = code.Split('\n').Count(l => l.Contains(".local", StringComparison.Ordinal));
        return $"{lines} lines of PTX" + (local > 0 ? $", {local} lines use .local memory" : "");
    }

    /// <summary>Type: message of the exception and each inner one (ILGPU wraps the cause in InternalCompilerException).</summary>
    static string Chain(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x != null; x = x.InnerException)
            parts.Add($"{x.GetType().Name}: {x.Message}");
        return string.Join(" -> ", parts);
    }
}
