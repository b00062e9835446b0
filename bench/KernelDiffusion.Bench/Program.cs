using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using KernelDiffusion.Kernels;

namespace KernelDiffusion.Bench;

/// <summary>BenchmarkDotNet per kernel and version, on the device KD_DEVICE names (default: cuda, then opencl, then cpu):
/// CaseBenchmarks runs bench/cases.json's kernel cases as kd bench does (with a roofline column from the card's
/// measured ceilings), StreamingKernels a few kernels the cases do not cover.
/// In-process toolchain: the GPU machine has no SDK to build a benchmark process with.
/// usage: dotnet run -c Release --project bench/KernelDiffusion.Bench -- --filter '*'</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        var config = DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
            .AddColumn(new RateColumn("GB/s", (c, _) => c.Bytes / 1e9), new RateColumn("GFLOP/s", (c, _) => c.Flops / 1e9),
                new RateColumn("roofline", (c, seconds) => CaseBenchmarks.Peak.FloorMs(c) / 1e3 / seconds, perSecond: false))
            .WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(64));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }
}

/// <summary>A figure from the benchmark's KernelCost over its mean time: the cost comes from CaseBenchmarks for its
/// "Case" parameter, else from a public static Cost(string method, int size) on the benchmark's class. The roofline
/// column divides the floor (from the card's measured ceilings) by the mean time.</summary>
sealed class RateColumn(string name, Func<KernelCost, double, double> amount, bool perSecond = true) : IColumn
{
    public string Id => "rate-" + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => $"{name} from the kernel's FLOP and byte counts over the mean time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase bc, SummaryStyle style)
    {
        var stats = summary[bc]?.ResultStatistics;
        if (stats == null) return "-";
        KernelCost c;
        if (bc.Parameters.Items.FirstOrDefault(p => p.Name == "Case")?.Value is string caseName) c = CaseBenchmarks.CostOf(caseName);
        else if (name == "roofline") return "-";
        else
        {
            var cost = bc.Descriptor.Type.GetMethod("Cost", BindingFlags.Public | BindingFlags.Static);
            if (cost == null || bc.Parameters.Items.FirstOrDefault(p => p.Name == "Size")?.Value is not int n) return "-";
            c = (KernelCost)cost.Invoke(null, [bc.Descriptor.WorkloadMethod.Name, n])!;
        }
        double seconds = stats.Mean * 1e-9;
        return perSecond ? (amount(c, seconds) / seconds).ToString("F2") : amount(c, seconds).ToString("P1");
    }
}
