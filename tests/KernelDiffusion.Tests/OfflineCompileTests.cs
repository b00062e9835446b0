using System.Diagnostics;
using System.Reflection;
using ILGPU;
using KernelDiffusion.Checks;
using KernelDiffusion.Kernels;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>Every kernel through ILGPU's real PTX and OpenCL C compilers, no device needed (see OfflineCompile).
/// The CPU accelerator runs kernels as .NET, so without this a kernel the GPU compiler rejects shows only on the GPU.</summary>
public sealed class OfflineCompileTests(ITestOutputHelper output)
{
    /// <summary>Kernels known not to compile for a target today ("target:Type.Method"). The test fails on any failure
    /// not listed here, and on a listed kernel that now compiles (so the list shrinks as kernels are fixed).</summary>
    static readonly HashSet<string> KnownFailures = [];

    /// <summary>On the CPU accelerator every read of a grid or group dimension is a call into the runtime: a loop that
    /// steps by Group.DimX (or by the grid's stride) read in its header pays that call per element. The gradient norm's
    /// kernel took 1 s of each fmnist_unet training step on 2 cores so, 0.04 s with the stride read once (bench/NOTES.md,
    /// "The CPU accelerator: grid and group dimensions"). Kernels read the dimension once, before the loop.</summary>
    [Fact]
    public void NoKernelLoopReadsAGroupDimensionEachStep()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !Directory.Exists(Path.Combine(dir.FullName, "kernels", "KernelDiffusion.Kernels"))) dir = dir.Parent;
        Assert.NotNull(dir);
        var steps = new System.Text.RegularExpressions.Regex(@"for \([^;]*;[^;]*;[^)]*(Group\.DimX|Grid\.DimX \* Group\.DimX)");
        var found = Directory.GetFiles(Path.Combine(dir!.FullName, "kernels", "KernelDiffusion.Kernels"), "*.cs")
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => steps.IsMatch(x.line))
            .Select(x => $"{Path.GetFileName(x.f)}:{x.i + 1}: {x.line.Trim()}").ToList();
        Assert.True(found.Count == 0, "loops that read a group dimension each step:\n" + string.Join("\n", found));
    }

    [Fact]
    public void KernelNamingFindsEveryKernel()
    {
        var names = OfflineCompile.KernelMethods().Select(OfflineCompile.NameOf).ToList();
        // 135 kernels: every method passed to a LoadStreamKernel call (directly, through Conv2d.RunPerPass, or through
        // PtxTarget.LoadStreamKernel).
        Assert.Equal(135, names.Count);
        Assert.Contains("Gemm.V22Kernel", names);
        Assert.Contains("Attention.TiledForward16x8Kernel", names);
        Assert.Contains("Attention.WarpRowsForwardKernel", names);
        Assert.Contains("Attention.WarpRowsKeySideKernel", names);
        Assert.Contains("Attention.WarpRowsQueryGradKernel", names);
        Assert.Contains("Attention.LeanForwardKernel", names);
        Assert.Contains("Attention.LeanKeySideKernel", names);
        Assert.Contains("Attention.LeanQueryGradKernel", names);
        Assert.Contains("Attention.Tf32x3AsyncKeyGradKernel", names);
        Assert.Contains("Gemm.V12Kernel", names);
        Assert.Contains("Gemm.V13Kernel", names);
        Assert.Contains("Gemm.V19Kernel", names);
        Assert.Contains("Gemm.V19ATBTKernel", names);
        Assert.Contains("Gemm.V20Kernel", names);
        Assert.Contains("Gemm.V20BTKernel", names);
        Assert.Contains("Gemm.V8Kernel", names);
        Assert.Contains("Conv2d.V11Kernel", names);
        Assert.Contains("Conv2d.V10Kernel", names);
        Assert.Contains("Gemm.V7Kernel", names);
        Assert.Contains("Gemm.V6Kernel", names);
        Assert.Contains("Conv2d.V9Kernel", names);
        Assert.Contains("Gemm.V5Kernel", names);
        Assert.Contains("Conv2d.V6Kernel", names);
        Assert.Contains("Conv2d.V7Kernel", names);
        Assert.Contains("Conv2d.V8Kernel", names);
        Assert.Contains("Reduce.SumOfSquaresKernel", names);
        Assert.Contains("GroupNorm.BackwardV3Kernel", names);
        Assert.Contains("Attention.SharedBackwardKernel", names);
        Assert.Contains("PeakRate.MmaKernel", names);
        Assert.Contains("Conv2d.V5Kernel", names);
        Assert.Contains("Gemm.V4Kernel", names);
        Assert.Contains("PeakRate.FmaKernel", names);
        Assert.Contains("Dropout.Kernel", names);
        Assert.Contains("Conv2d.V4WeightGradKernel", names);
        Assert.Contains("Gemm.V3Kernel", names);
    }

    /// <summary>Every kernel compiled for PTX once for the two tests that read them all (26 s on 2 cores).</summary>
    static readonly Lazy<IReadOnlyList<(string Kernel, bool Ok, string Message, string? Code)>> AllPtx = new(() => OfflineCompile.CompileAll("ptx"));

    [Theory]
    [InlineData("ptx")]
    [InlineData("opencl")]
    public void EveryKernelCompiles(string target)
    {
        var sw = Stopwatch.StartNew();
        var results = target == "ptx" ? AllPtx.Value : OfflineCompile.CompileAll(target);
        output.WriteLine($"{target}: {results.Count} kernels in {sw.Elapsed.TotalSeconds:F1} s");
        foreach (var r in results) output.WriteLine($"  {(r.Ok ? "ok  " : "FAIL")} {r.Kernel}: {r.Message}");

        Assert.Equal(OfflineCompile.KernelMethods().Count, results.Count);
        var unexpected = results.Where(r => !r.Ok && !KnownFailures.Contains($"{target}:{r.Kernel}"))
            .Select(r => $"{r.Kernel}: {r.Message}").ToList();
        var nowCompiling = results.Where(r => r.Ok && KnownFailures.Contains($"{target}:{r.Kernel}")).Select(r => r.Kernel).ToList();
        Assert.True(unexpected.Count == 0 && nowCompiling.Count == 0,
            $"{unexpected.Count} kernels failed to compile for {target}:\n" + string.Join("\n", unexpected)
            + (nowCompiling.Count > 0 ? $"\nnow compile, remove from KnownFailures: {string.Join(", ", nowCompiling)}" : ""));
    }

    /// <summary>A kernel's LaunchBounds reach its PTX (GEMM v10 and conv v14 carry (256, 2)); kernels without keep none.</summary>
    [Fact]
    public void LaunchBoundsReachThePtx()
    {
        var methods = OfflineCompile.KernelMethods().Where(m => OfflineCompile.NameOf(m) is "Gemm.V10Kernel" or "Conv2d.V14Kernel" or "Gemm.V7Kernel").ToList();
        var results = OfflineCompile.Compile("ptx", methods);
        Assert.Equal(3, results.Count);
        foreach (var r in results)
        {
            Assert.True(r.Ok, r.Message);
            bool bounded = r.Kernel != "Gemm.V7Kernel";
            Assert.Equal(bounded, r.Code!.Contains(".maxntid 256, 1, 1"));
            Assert.Equal(bounded, r.Code!.Contains(".minnctapersm 2"));
        }
    }

    // Kernels the CPU accelerator runs happily but ILGPU's GPU compiler must reject.
    static void AllocatingKernel(ArrayView<float> x) => x[0] = new object().GetHashCode();
    static void MathClampKernel(ArrayView<float> x) => x[0] = Math.Clamp(x[0], 0f, 1f);

    [Theory]
    [InlineData("ptx")]
    [InlineData("opencl")]
    public void ACompileFailsOnCodeTheGpuCompilerRejects(string target)
    {
        var bad = new[] { nameof(AllocatingKernel), nameof(MathClampKernel) }
            .Select(n => typeof(OfflineCompileTests).GetMethod(n, BindingFlags.Static | BindingFlags.NonPublic)!).ToList();
        var results = OfflineCompile.Compile(target, bad.Append(OfflineCompile.KernelMethods()[0]));
        foreach (var r in results) output.WriteLine($"{(r.Ok ? "ok  " : "FAIL")} {r.Kernel}: {r.Message}");
        Assert.False(results[0].Ok);
        Assert.False(results[1].Ok);
        Assert.True(results[2].Ok, "a good kernel after failed ones still compiles: " + results[2].Message);
    }

    /// <summary>The ptxas to use, or a skip: the tests below need one (scripts/get-ptxas.sh or KD_PTXAS).</summary>
    static string RequirePtxas()
    {
        var ptxas = Ptxas.Find();
        Skip.If(ptxas == null, $"ptxas not found, the PTX is not assembled: {Ptxas.HowToGet}");
        return ptxas!;
    }

    /// <summary>Each kernel by the ptxas of its target: sm_80 (11.8), or sm_90 where PtxTarget retargets it (ptxas 12;
    /// where there is none, those kernels are listed as not assembled, and BulkVersionsAreRetargetedToSm90AndStageByBulkCopies
    /// skips).</summary>
    [SkippableFact]
    public void EveryKernelAssemblesWithPtxas()
    {
        var ptxas = RequirePtxas();
        var compiled = AllPtx.Value;
        Assert.All(compiled, r => Assert.True(r.Ok, r.Message));
        output.WriteLine($"ptxas: {ptxas}, -arch={Ptxas.Architecture}; for sm_90: {Ptxas.FindSm90() ?? "none"}");
        var problems = new List<string>();
        foreach (var r in compiled)
        {
            if (Ptxas.FindFor(r.Code!) is not { } tool)
            {
                output.WriteLine($"  not assembled ({Ptxas.TargetOf(r.Code!)}) {r.Kernel}: {Ptxas.HowToGetFor(r.Code!)}");
                continue;
            }
            var a = Ptxas.Assemble(tool, r.Code!, r.Kernel);
            output.WriteLine($"  {(a.Ok ? a.Spills ? "SPILL" : "ok   " : "FAIL ")} {r.Kernel}: {a.Message}");
            // Rejection fails, and so does a report the parser cannot read (it is pinned to what ptxas 11.8 prints);
            // spills are only listed.
            if (!a.Ok || !a.Parsed) problems.Add($"{r.Kernel}: {a.Message}");
        }
        Assert.True(problems.Count == 0, $"{problems.Count} kernels not assembled cleanly:\n" + string.Join("\n", problems));
    }

    [SkippableFact]
    public void PtxasRejectsAnUnknownInstruction()
    {
        var ptxas = RequirePtxas();
        // What a typo in inline PTX (CudaAsm) would give: ILGPU passes it through, only ptxas knows it is not PTX.
        const string ptx = """
            .version 8.8
            .target sm_80
            .address_size 64
            .visible .entry BadKernel(.param .u64 p)
            {
                .reg .f32 %f<2>;
                mov.f32 %f1, 0f3F800000;
                frobnicate.f32 %f1, %f1;
                ret;
            }
            """;
        var a = Ptxas.Assemble(ptxas, ptx, "BadKernel");
        output.WriteLine(a.Message);
        Assert.False(a.Ok);
        Assert.Null(a.Registers);
        Assert.Contains("BadKernel.ptx, line 8", a.Message);
        Assert.Contains("Not a name of any known instruction: 'frobnicate'", a.Message);
    }

    [Fact]
    public void PtxasReportIsParsedOrSaidNotUnderstood()
    {
        const string report = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'K' for 'sm_80'
            ptxas info    : Function properties for K
                16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
            ptxas info    : Used 255 registers, 360 bytes cmem[0]
            """;
        var a = Ptxas.Parse(true, report);
        Assert.True(a.Parsed && a.Spills);
        Assert.Equal((255, 16, 8, 12), (a.Registers!.Value, a.StackFrameBytes!.Value, a.SpillStoreBytes!.Value, a.SpillLoadBytes!.Value));

        var unknown = Ptxas.Parse(true, "ptxas info : something else");
        Assert.True(unknown.Ok);
        Assert.False(unknown.Parsed);
        Assert.Null(unknown.Registers);
        Assert.Contains("not understood", unknown.Message);
    }

    [Fact]
    public void OnlyTheVersionDirectiveIsLowered()
    {
        string ptx = "//\n// Generated by ILGPU\n//\n.version 8.8\n.target sm_80\n// .version 8.8 in a comment\n";
        Assert.Equal(ptx.Replace(".version 8.8\n.target", ".version 7.8\n.target"), Ptxas.LowerVersion(ptx));
        Assert.Equal(".version 7.0\n", Ptxas.LowerVersion(".version 7.0\n"));
        Assert.Equal(".version 8.0\n.target sm_90\n", Ptxas.LowerVersion(".version 8.8\n.target sm_90\n", Ptxas.AssembledIsaSm90));
    }

    /// <summary>PtxTarget rewrites the .target directive only (a comment naming a target stays), and refuses PTX without
    /// one; Ptxas reads the target back to pick its assembler.</summary>
    [Fact]
    public void OnlyTheTargetDirectiveIsRetargeted()
    {
        string ptx = "//\n.version 8.8\n.target sm_80\n// .target sm_80 in a comment\n";
        string sm90 = PtxTarget.Retarget(ptx, "sm_90");
        Assert.Equal(ptx.Replace("8\n.target sm_80\n", "8\n.target sm_90\n"), sm90);
        Assert.Equal("sm_90", Ptxas.TargetOf(sm90));
        Assert.Equal("sm_80", Ptxas.TargetOf(ptx));
        Assert.Equal(Ptxas.Architecture, Ptxas.TargetOf(".version 8.8\n"));
        Assert.Throws<InvalidOperationException>(() => PtxTarget.Retarget(".version 8.8\n", "sm_90"));
    }

    [PtxTarget(9, 0), LaunchBounds(64, 2)]
    static void RetargetedKernel(ArrayView<float> x) => x[Grid.GlobalIndex.X] = 1f;

    /// <summary>What PtxTarget.LoadStreamKernel hands the CUDA accelerator: ILGPU's compiled kernel rebuilt around the
    /// retargeted text through ILGPU's internal constructor (reflection; this fails first if an ILGPU update moves it),
    /// the same entry point, launch bounds and kernel information. On a small kernel of this test's (GEMM v22's take
    /// seconds to compile); v22's own go through the same path in kd check --compile.</summary>
    [Fact]
    public void ACompiledKernelIsRebuiltAroundRetargetedPtx()
    {
        using var context = Context.Create(b => b.AutoAssertions().EnableAlgorithms());
        var arch = OfflineCompile.PtxArchitecture;
        using var backend = new ILGPU.Backends.PTX.PTXBackend(context, new ILGPU.Runtime.Cuda.CudaCapabilityContext(arch), arch,
            OfflineCompile.PtxInstructionSet, null);
        var method = typeof(OfflineCompileTests).GetMethod(nameof(RetargetedKernel), BindingFlags.Static | BindingFlags.NonPublic)!;
        Assert.Equal("sm_90", PtxTarget.Of(method));
        var compiled = (ILGPU.Backends.PTX.PTXCompiledKernel)backend.Compile(
            ILGPU.Backends.EntryPoints.EntryPointDescription.FromExplicitlyGroupedKernel(method), LaunchBoundsAttribute.Of(method));
        Assert.Equal("sm_80", Ptxas.TargetOf(compiled.PTXAssembly));
        var rebuilt = PtxTarget.WithAssembly(compiled, PtxTarget.Retarget(compiled.PTXAssembly, "sm_90"));
        Assert.Equal("sm_90", Ptxas.TargetOf(rebuilt.PTXAssembly));
        Assert.Equal(compiled.PTXAssembly.Length, rebuilt.PTXAssembly.Length);
        Assert.Equal(compiled.Name, rebuilt.Name);
        Assert.Equal(compiled.NumParameters, rebuilt.NumParameters);
        Assert.Equal(compiled.Specialization.MaxNumThreadsPerGroup, rebuilt.Specialization.MaxNumThreadsPerGroup);
        Assert.Same(compiled.Info, rebuilt.Info);
    }
}
