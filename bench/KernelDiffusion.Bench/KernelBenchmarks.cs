using BenchmarkDotNet.Attributes;
using KernelDiffusion.Benchmarks;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Bench;

static class Devices
{
    public static readonly bool OnCpu = ComputeDevice.Describe().Chosen?.StartsWith("cpu") ?? true;
}

/// <summary>Kernels over Size floats that bench/cases.json does not cover (SiLU and AdamW are CaseBenchmarks' cases).</summary>
public class StreamingKernels
{
    ComputeDevice d = null!;
    Tensor a = null!, o = null!, bias = null!, sum = null!;

    [ParamsSource(nameof(Sizes))]
    public int Size;

    public static IEnumerable<int> Sizes => Devices.OnCpu ? [1 << 16, 1 << 20] : [1 << 20, 1 << 26];

    [GlobalSetup]
    public void Setup()
    {
        d = ComputeDevice.Open();
        Tensor R(int[] s, ulong seed)
        {
            var t = d.Empty(s);
            Philox.Draw(d.Accelerator, t.View, t.Length, seed, 0, normal: true);
            return t;
        }
        a = R([Size / 64, 64], 1); o = R([Size / 64, 64], 3);
        bias = R([64], 5); sum = d.Empty([64]);
        d.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => d.Dispose();

    [Benchmark] public void AddBroadcast()
    {
        Elementwise.Binary(d.Accelerator, BinaryOp.Add, a.View, bias.View, o.View, Broadcast4.Create(a.Shape, bias.Shape, a.Shape), Size);
        d.Synchronize();
    }

    [Benchmark] public void SumOverRows()
    {
        var p = ReducePlan.Create(a.Shape, [1, 64]);
        Reduce.Sum(d.Accelerator, a.View, sum.View, p, 64, 1f);
        d.Synchronize();
    }

    [Benchmark] public void PhiloxNormal() { Philox.Draw(d.Accelerator, o.View, Size, 7, 0, normal: true); d.Synchronize(); }

    public static KernelCost Cost(string method, int size) => method switch
    {
        nameof(AddBroadcast) => Elementwise.BinaryCost(size, 64, size),
        nameof(SumOverRows) => Reduce.SumCost(size, 64),
        nameof(PhiloxNormal) => Philox.Cost(size, normal: true),
        _ => new KernelCost(0, 0),
    };
}

/// <summary>Every kernel case of bench/cases.json at each version: the same runs as <c>kd bench</c> (full shapes on a
/// GPU, the quick ones on the CPU accelerator), named "case@version".</summary>
public class CaseBenchmarks
{
    static readonly Lazy<ComputeDevice> Device = new(() => ComputeDevice.Open(profiling: true));
    static readonly Lazy<Peak> Ceilings = new(() =>
    {
        using var timer = new BenchTimer(Device.Value);
        return timer.MeasurePeak();
    });
    static readonly Lazy<(List<string> Names, Dictionary<string, KernelCost> Costs)> Listed = new(List);

    BenchRunner.PreparedCase prepared = null!;
    Action run = null!;

    [ParamsSource(nameof(Cases))]
    public string Case = "";

    public static IEnumerable<string> Cases => Listed.Value.Names;

    static BenchCases Load()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "bench", "cases.json")))
                return BenchCases.Load(Path.Combine(dir.FullName, "bench", "cases.json"), quick: Devices.OnCpu);
        throw new FileNotFoundException("bench/cases.json: run from the repository");
    }

    static BenchRunner Runner() => new(Device.Value, Ceilings.Value, new BenchTimer(Device.Value));

    /// <summary>Prepares every case once to list its versions and costs.</summary>
    static (List<string>, Dictionary<string, KernelCost>) List()
    {
        var names = new List<string>();
        var costs = new Dictionary<string, KernelCost>();
        foreach (var c in Load().Kernels)
        {
            using var p = Runner().Prepare(c);
            foreach (var r in p.Runs)
            {
                names.Add($"{r.Name}@{r.Version}");
                costs[$"{r.Name}@{r.Version}"] = r.Cost;
            }
        }
        return (names, costs);
    }

    public static KernelCost CostOf(string name) => Listed.Value.Costs[name];
    public static Peak Peak => Ceilings.Value;

    [GlobalSetup]
    public void Setup()
    {
        var (name, version) = (Case[..Case.IndexOf('@')], Case[(Case.IndexOf('@') + 1)..]);
        prepared = Runner().Prepare(Load().Kernels.Single(c => (string)c["name"]! == name));
        run = prepared.Runs.Single(r => r.Version == version).Run;
    }

    [GlobalCleanup]
    public void Cleanup() => prepared.Dispose();

    [Benchmark]
    public void Run()
    {
        run();
        Device.Value.Tape.Reset();
        Device.Value.Synchronize();
    }
}
