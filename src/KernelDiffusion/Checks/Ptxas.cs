using System.Diagnostics;
using System.Text.RegularExpressions;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

/// <summary>What ptxas said about one kernel's PTX. The numbers are null unless ptxas printed them (a rejected
/// kernel, or output this parser does not understand: see <see cref="Parsed"/>).</summary>
public sealed record PtxasResult(bool Ok, string Message, int? Registers = null, int? StackFrameBytes = null,
    int? SpillStoreBytes = null, int? SpillLoadBytes = null)
{
    public bool Parsed => Registers != null && StackFrameBytes != null && SpillStoreBytes != null && SpillLoadBytes != null;
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>Assembles PTX with NVIDIA's ptxas, offline: the step the CUDA driver otherwise does at load, so an
/// invalid instruction (inline PTX through <c>CudaAsm</c>) or a register spill shows without a GPU.
/// Two assemblers: PTX for sm_80 (what ILGPU writes for every kernel) goes to ptxas 11.8, from <c>KD_PTXAS</c>, else
/// <c>.tools/cuda/usr/bin/ptxas</c> (what scripts/get-ptxas.sh fetches) in a folder above the current directory or the
/// program, else PATH; PTX retargeted to sm_90 (<see cref="PtxTarget"/>: GEMM v22's bulk copies, PTX ISA 8.0) needs
/// ptxas 12 or newer, from <c>KD_PTXAS_SM90</c>, else <c>.tools/cuda12/usr/bin/ptxas</c> (get-ptxas.sh fetches CUDA
/// 12.4's too). The sm_80 kernels stay on 11.8, the assembler every register and spill count in bench/NOTES.md
/// came from (12.4 differs by a few registers and bytes of spill on some).</summary>
public static class Ptxas
{
    public const string EnvironmentVariable = "KD_PTXAS", EnvironmentVariableSm90 = "KD_PTXAS_SM90";
    public const string HowToGet = "run scripts/get-ptxas.sh (as root: it uses apt) or set KD_PTXAS to a ptxas binary";
    public const string HowToGetSm90 = "run scripts/get-ptxas.sh (as root: it uses apt) or set KD_PTXAS_SM90 to a ptxas of CUDA 12 or newer";

    /// <summary>ILGPU emits <c>.target sm_80</c> whatever the card (see OfflineCompile.PtxArchitecture).</summary>
    public const string Architecture = "sm_80";

    /// <summary>The newest PTX ISA that ptxas 11.8 (Debian bookworm's nvidia-cuda-toolkit) accepts.</summary>
    public const string AssembledIsa = "7.8";

    /// <summary>The ISA sm_90 PTX is assembled at: the first with cp.async.bulk and mbarrier expect_tx (any ptxas 12 takes it).</summary>
    public const string AssembledIsaSm90 = "8.0";

    static readonly string RepoRelativePath = Path.Combine(".tools", "cuda", "usr", "bin", "ptxas");
    static readonly string RepoRelativePathSm90 = Path.Combine(".tools", "cuda12", "usr", "bin", "ptxas");

    /// <summary>The ptxas to run, or null when there is none. A KD_PTXAS that names no file is an error, not a fallback.</summary>
    public static string? Find() => Find(EnvironmentVariable, RepoRelativePath, searchPath: true);

    /// <summary>The ptxas for sm_90 PTX (CUDA 12 or newer), or null when there is none. Never PATH's, whose version is unknown.</summary>
    public static string? FindSm90() => Find(EnvironmentVariableSm90, RepoRelativePathSm90, searchPath: false);

    /// <summary>The ptxas for <paramref name="ptx"/>'s target (<see cref="TargetOf"/>).</summary>
    public static string? FindFor(string ptx) => IsSm90(TargetOf(ptx)) ? FindSm90() : Find();

    /// <summary>What to do when <see cref="FindFor"/> gives none for <paramref name="ptx"/>.</summary>
    public static string HowToGetFor(string ptx) => IsSm90(TargetOf(ptx)) ? HowToGetSm90 : HowToGet;

    static string? Find(string variable, string repoRelative, bool searchPath)
    {
        var env = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(env))
            return File.Exists(env) ? Path.GetFullPath(env) : throw new KdException($"{variable}={env}: no such file");
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, repoRelative);
                if (File.Exists(candidate)) return candidate;
            }
        if (!searchPath) return null;
        string exe = OperatingSystem.IsWindows() ? "ptxas.exe" : "ptxas";
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);
    }

    /// <summary>The architecture a PTX text's <c>.target</c> names (<see cref="Architecture"/> when it names none).</summary>
    public static string TargetOf(string ptx) => PtxTarget.TargetOf(ptx) ?? Architecture;

    static bool IsSm90(string target) => int.TryParse(target.AsSpan(3).TrimEnd("abcdefghijklmnopqrstuvwxyz"), out int sm) && sm >= 90;

    /// <summary>Assembles <paramref name="ptx"/> for its target (sm_80, or sm_90 where PtxTarget retargeted it) with
    /// <c>-v</c> in a temporary folder (the file is named after <paramref name="name"/>, so ptxas' messages name the
    /// kernel) and reads the register and spill counts.</summary>
    public static PtxasResult Assemble(string ptxas, string ptx, string name = "kernel")
    {
        var dir = Directory.CreateTempSubdirectory("kd-ptxas-");
        try
        {
            string file = $"{name}.ptx", target = TargetOf(ptx);
            File.WriteAllText(Path.Combine(dir.FullName, file), LowerVersion(ptx, IsSm90(target) ? AssembledIsaSm90 : AssembledIsa));
            var psi = new ProcessStartInfo(ptxas)
            {
                WorkingDirectory = dir.FullName,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { $"-arch={target}", "-v", file, "-o", $"{name}.cubin" }) psi.ArgumentList.Add(a);
            Process? started;
            try { started = Process.Start(psi); }
            catch (System.ComponentModel.Win32Exception e) { throw new KdException($"could not run {ptxas}: {e.Message}"); }
            using var p = started ?? throw new KdException($"could not run {ptxas}");
            // Both streams at once: ptxas writes its -v report to stderr, and a full pipe would block it.
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            return Parse(p.ExitCode == 0, (stdout.Result + stderr.Result).Trim());
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>ILGPU writes <c>.version 8.8</c> (what the H200's driver takes); ptxas 11.8 refuses anything above 7.8
    /// (<paramref name="isa"/>; sm_90 PTX goes to 8.0). Only the directive is lowered, so the code assembled is the code
    /// the GPU gets; an instruction that really needs a newer ISA would be rejected here (ptxas' message names it)
    /// although the GPU's newer driver accepts it.</summary>
    public static string LowerVersion(string ptx, string isa = AssembledIsa)
    {
        var m = VersionDirective.Match(ptx);
        if (!m.Success || new Version(m.Groups[2].Value) <= new Version(isa)) return ptx;
        return ptx[..m.Index] + m.Groups[1].Value + ".version " + isa + ptx[(m.Index + m.Length)..];
    }

    static readonly Regex VersionDirective = new(@"^([ \t]*)\.version[ \t]+(\d+\.\d+)", RegexOptions.Multiline);

    /// <summary>Reads <c>ptxas -v</c>'s report: "Used N registers" per entry function and "N bytes stack frame, N bytes
    /// spill stores, N bytes spill loads" per function. One kernel is one entry; a called .func has its own
    /// properties line, so spills are summed and the stack frame is the largest. Nothing is guessed: if either
    /// kind of line is missing, the numbers stay null and the message says so.</summary>
    public static PtxasResult Parse(bool exitedOk, string output)
    {
        if (!exitedOk)
        {
            var errors = output.Split('\n').Select(l => l.Trim()).Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)
                || l.Contains("fatal", StringComparison.OrdinalIgnoreCase)).ToList();
            // ptxas' own lines start "ptxas"; anything else gets that prefix, so the message says who spoke.
            return new PtxasResult(false, errors.Count > 0 ? string.Join("; ", errors)
                : "ptxas failed: " + (output.Length > 0 ? output.ReplaceLineEndings(" ") : "no output"));
        }
        var registers = Regex.Matches(output, @"Used (\d+) registers").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        var frames = Regex.Matches(output, @"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
            .Select(m => (Stack: int.Parse(m.Groups[1].Value), Stores: int.Parse(m.Groups[2].Value), Loads: int.Parse(m.Groups[3].Value)))
            .ToList();
        if (registers.Count == 0 || frames.Count == 0)
            return new PtxasResult(true, "ptxas accepted it, but its report was not understood: " + output.ReplaceLineEndings(" "));
        var r = new PtxasResult(true, "", registers.Max(), frames.Max(f => f.Stack), frames.Sum(f => f.Stores), frames.Sum(f => f.Loads));
        return r with { Message = $"{r.Registers} registers, {r.StackFrameBytes} B stack frame, {r.SpillStoreBytes} B spill stores, {r.SpillLoadBytes} B spill loads" };
    }
}
