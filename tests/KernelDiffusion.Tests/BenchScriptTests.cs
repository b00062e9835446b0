using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace KernelDiffusion.Tests;

/// <summary>The Python tools the GPU run ends with (bench/join.py, bench/fastest.py, scripts/ncu-sass.py) and the SASS
/// reader (scripts/sass-loops.py), on small hand-made results: a mistake there would only show after the lent GPU's
/// minutes were spent. Skipped where there is no python3.</summary>
public sealed class BenchScriptTests(ITestOutputHelper log) : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("kd-bench-scripts").FullName;
    public void Dispose() => Directory.Delete(dir, recursive: true);

    static string Root
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "bench", "join.py"))) return d.FullName;
            throw new FileNotFoundException("bench/join.py above " + AppContext.BaseDirectory);
        }
    }

    static string? Python()
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "python3")).FirstOrDefault(File.Exists);

    string Run(string script, params string[] args)
    {
        var python = Python();
        Skip.If(python == null, "python3 is not on PATH");
        var psi = new ProcessStartInfo(python!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(Root, script.Contains('/') ? script : Path.Combine("bench", script)));   // bench/'s by name
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        log.WriteLine(output.Result + error.Result);
        Assert.True(p.ExitCode == 0, $"{script} exited {p.ExitCode}: {error.Result}");
        return output.Result;
    }

    string Write(string name, string json)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    const string Ours = """
        {"device": "H100", "peak": {"copy_gbs": 2940, "fp32_tflops": 59, "tf32_tflops": 300}, "results": [
          {"name": "sgemm.4096", "version": "v2.tiled", "default": true, "ms": 30.0},
          {"name": "sgemm.4096", "version": "v4.blocked", "default": false, "ms": 10.0},
          {"name": "sgemm.4096", "version": "v5.tf32", "default": false, "ms": 0.6},
          {"name": "silu", "version": "v1.scalar", "default": true, "ms": 0.9},
          {"name": "silu", "version": "v2.float4", "default": false, "ms": 0.72}]}
        """;

    [SkippableFact]
    public void JoinJudgesTheDefaultAgainstFp32AndTheTf32VersionAgainstTf32()
    {
        var torch = Write("torch.json", """
            {"device": "H100", "results": [{"name": "sgemm.4096", "ms": 3.0}, {"name": "silu", "ms": 0.8},
              {"name": "sgemm.4096@tf32", "ms": 0.5, "tf32": true}]}
            """);
        Run("join.py", Write("ours.json", Ours), torch, "--out", Path.Combine(dir, "ratios.md"));
        var rows = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "ratios.json")))!["rows"]!.AsArray();
        JsonNode Row(string name, string version) => rows.Single(r => (string)r!["name"]! == name && (string)r["version"]! == version)!;
        // v2 (the default) is 10x PyTorch fp32: fails <= 1.5. v5 is 1.2x PyTorch tf32: meets <= 1.5 against tf32.
        Assert.Equal(10.0, (double)Row("sgemm.4096", "v2.tiled")["ratio"]!, 6);
        Assert.False((bool)Row("sgemm.4096", "v2.tiled")["meets_target"]!);
        Assert.Equal(1.2, (double)Row("sgemm.4096", "v5.tf32")["ratio_tf32"]!, 6);
        Assert.True((bool)Row("sgemm.4096", "v5.tf32")["meets_target"]!);
        Assert.Equal("<= 1.5 vs tf32", (string)Row("sgemm.4096", "v5.tf32")["target"]!);
        // A non-default fp32 version is listed but not judged.
        Assert.Null(Row("sgemm.4096", "v4.blocked")["meets_target"]);
    }

    [SkippableFact]
    public void FastestPicksTheFastestPassingFp32VersionAndListsTf32Apart()
    {
        // GEMM v4 failed a check, so v2 stays the fastest eligible fp32 version; SiLU v2 passed and is faster.
        var check = Write("check.json", """
            {"passed": 3, "failed": 1, "results": [
              {"Kernel": "gemm.v4.nn", "Passed": false}, {"Kernel": "gemm.v5.nn", "Passed": true},
              {"Kernel": "silu.v2", "Passed": true}, {"Kernel": "group_norm.silu.v2.backward", "Passed": true}]}
            """);
        var md = Run("fastest.py", Write("ours.json", Ours), check, "--out", Path.Combine(dir, "fastest.md"));
        Assert.Contains("| sgemm.4096 | v2.tiled | 30.0 | v2.tiled | 30.0 | 1.00x | no | v5.tf32 | 0.6 |", md);
        Assert.Contains("| silu | v1.scalar | 0.9 | v2.float4 | 0.72 | 1.25x | **yes** | - | - |", md);
        Assert.Contains("1 of 2 cases would run faster with another passing fp32 version.", md);
    }

    /// <summary>Nsight Compute's per-instruction CSV (--page source --csv --print-source sass) summed by opcode: a
    /// predicated instruction counts under its opcode, the wavefronts per executed instruction are the row's, and the
    /// instruction with the most excess wavefronts leads the list.</summary>
    [SkippableFact]
    public void NcuSassSumsTheCountersByOpcode()
    {
        var csv = Write("k-sass.csv", """
            "Kernel Name","Kernel_V19Kernel",
            "Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed","L1 Wavefronts Shared Excessive","L1 Wavefronts Shared","L1 Wavefronts Shared Ideal","L2 Theoretical Sectors Global Excessive","L2 Theoretical Sectors Global","L2 Theoretical Sectors Global Ideal"
            "0x10","LDGSTS.E.BYPASS.128 desc[UR14][R2.64], P2, [R7]","10","100","1050","1450","400","1200","2800","1600"
            "0x20","LDS R1, [R2]","30","200","0","200","200","0","0","0"
            "0x30","@!P0 HMMA.1688.F32.TF32 R4, R8, R12, R4","5","400","0","0","0","0","0","0"
            "0x40","@!P0 HMMA.1688.F32.TF32 R8, R8, R12, R8","5","400","0","0","0","0","0","0"
            """);
        var text = Run("scripts/ncu-sass.py", csv, "--top", "1");
        Assert.Contains("shared wavefronts 1650 (ideal 600, excess 1050); L2 sectors 2800 (ideal 1600); stall samples 50", text);
        var ldgsts = text.Split('\n').Single(l => l.StartsWith("LDGSTS.E.BYPASS.128 "));
        Assert.Contains(" 14.50 ", ldgsts);
        var hmma = text.Split('\n').Single(l => l.StartsWith("HMMA.1688.F32.TF32 "));
        Assert.Contains(" 800 ", hmma);   // both predicated HMMA under one opcode
        var listed = text[text.IndexOf("the 1 instructions", StringComparison.Ordinal)..].Split('\n')[1];
        Assert.Contains("LDGSTS.E.BYPASS.128", listed);
    }

    /// <summary>A report of several kernels (attention v15's three) is read one section at a time: --kernel 1 sums the
    /// second kernel's rows only and names it; a section past the last is refused, saying how many there are.</summary>
    [SkippableFact]
    public void NcuSassReadsTheKernelAsked()
    {
        const string header = "\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\",\"Instructions Executed\",\"L1 Wavefronts Shared Excessive\","
            + "\"L1 Wavefronts Shared\",\"L1 Wavefronts Shared Ideal\",\"L2 Theoretical Sectors Global Excessive\",\"L2 Theoretical Sectors Global\","
            + "\"L2 Theoretical Sectors Global Ideal\"";
        var csv = Write("k3-sass.csv", string.Join("\n",
            "\"Kernel Name\",\"Kernel_Forward\",", header,
            "\"0x10\",\"LDS R1, [R2]\",\"30\",\"200\",\"0\",\"200\",\"200\",\"0\",\"0\",\"0\"",
            "\"Kernel Name\",\"Kernel_ValueGrad\",", header,
            "\"0x10\",\"HMMA.1688.F32.TF32 R4, R8, R12, R4\",\"7\",\"400\",\"0\",\"0\",\"0\",\"0\",\"0\",\"0\"",
            "\"0x20\",\"@P0 HMMA.1688.F32.TF32 R4, R8, R12, R4\",\"9\",\"400\",\"0\",\"0\",\"0\",\"0\",\"0\",\"0\"") + "\n");
        var first = Run("scripts/ncu-sass.py", csv);
        Assert.Contains("kernel 0 (Kernel_Forward): 1 instructions", first);
        Assert.Contains("stall samples 30", first);
        var second = Run("scripts/ncu-sass.py", csv, "--kernel", "1");
        Assert.Contains("kernel 1 (Kernel_ValueGrad): 2 instructions", second);
        Assert.Contains("stall samples 16", second);
        Assert.DoesNotContain("LDS", second);
        var e = Assert.Throws<Xunit.Sdk.TrueException>(() => Run("scripts/ncu-sass.py", csv, "--kernel", "2"));
        Assert.Contains("no kernel 2: the file has 2", e.Message);
    }

    /// <summary>sass-loops.py's tile-loop estimate on a hand-made listing: one pass along the fall-through path (a
    /// predicated forward branch not taken, an unconditional one taken over its cold block, NOP not counted, a
    /// predicated STL counted), the mma loop inside run --passes times; only the innermost loop holding an mma loop gets the line, not the grid loop
    /// around it.</summary>
    [SkippableFact]
    public void SassLoopsCountsOnePassOfTheTileLoop()
    {
        var sass = Write("k.sass", """
                    /*0000*/                   MOV R1, c[0x0][0x28] ;
                    /*0010*/                   IADD3 R5, R5, 0x1, RZ ;
                    /*0020*/                   IADD3 R2, R2, 0x1, RZ ;
                    /*0030*/                   HMMA.1688.F32.TF32 R4, R8, R12, R4 ;
                    /*0040*/                   LDS R8, [R9] ;
                    /*0050*/              @!P1 BRA 0x30 ;
                    /*0060*/               @P2 BRA 0x90 ;
                    /*0070*/              @P0 STL [R1], R3 ;
                    /*0080*/                   BRA 0xb0 ;
                    /*0090*/                   FMUL R3, R3, R4 ;
                    /*00a0*/                   FMUL R3, R3, R4 ;
                    /*00b0*/                   NOP ;
                    /*00c0*/              @!P3 BRA 0x20 ;
                    /*00d0*/                   STG.E [R6.64], R3 ;
                    /*00e0*/              @!P4 BRA 0x10 ;
                    /*00f0*/                   EXIT ;
            """);
        var four = Run("scripts/sass-loops.py", "--passes", "4", sass);
        Assert.Contains("loop 0x0030-0x0050: 3 instructions, 0 FFMA, 1 LDS", four);
        // 0x20, the inner loop's 3 four times, 0x60, 0x70 (a predicated local store), the jump at 0x80, then 0xc0: 17.
        Assert.Contains("tile loop 0x0020-0x00c0: 17 instructions a pass, 4 HMMA, 1 STL", four);
        Assert.DoesNotContain("tile loop 0x0010", four);
        Assert.Contains("tile loop 0x0020-0x00c0: 11 instructions a pass, 2 HMMA, 1 STL", Run("scripts/sass-loops.py", "--passes", "2", sass));
        Assert.DoesNotContain("tile loop", Run("scripts/sass-loops.py", sass));
    }

    [SkippableFact]
    public void MergeKeepsEveryRunsResultsInOrderAndSkipsAMissingFile()
    {
        var steps = Write("steps.json", """
            {"device": "H100", "seconds": 9, "results": [{"name": "fmnist_unet.train_step.b256", "version": "default", "default": true, "ms": 140.0}]}
            """);
        var merged = Path.Combine(dir, "all.json");
        Run("merge.py", merged, steps, Path.Combine(dir, "missing.json"), Write("ours.json", Ours));
        var all = JsonNode.Parse(File.ReadAllText(merged))!;
        var names = all["results"]!.AsArray().Select(r => (string)r!["name"]!).ToArray();
        Assert.Equal(["fmnist_unet.train_step.b256", "sgemm.4096", "sgemm.4096", "sgemm.4096", "silu", "silu"], names);
        Assert.Equal(2940, (double)all["peak"]!["copy_gbs"]!);   // the last file's header
    }
}
