using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using KernelDiffusion.Kernels;

namespace KernelDiffusion.Bench;

/// <summary>BenchmarkDotNet per kernel, on the device KD_DEVICE names (default: cuda, then opencl, then cpu).
/// In-process toolchain: the GPU machine has no SDK to build a benchmark process with.
/// usage: dotnet run -c Release --project bench/KernelDiffusion.Bench -- --filter '*'</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        var config = DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
            .AddColumn(new RateColumn("GB/s", c => c.Bytes / 1e9), new RateColumn("GFLOP/s", c => c.Flops / 1e9));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }
}

/// <summary>A rate from the benchmark's KernelCost (a public static Cost(string method, int size) on its class)
/// over its mean time.</summary>
sealed class RateColumn(string name, Func<KernelCost, double> amount) : IColumn
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
        var cost = bc.Descriptor.Type.GetMethod("Cost", BindingFlags.Public | BindingFlags.Static);
        var size = bc.Parameters.Items.FirstOrDefault(p => p.Name == "Size")?.Value;
        if (stats == null || cost == null || size is not int n) return "-";
        var c = (KernelCost)cost.Invoke(null, [bc.Descriptor.WorkloadMethod.Name, n])!;
        return (amount(c) / (stats.Mean * 1e-9)).ToString("F2");
    }
}
