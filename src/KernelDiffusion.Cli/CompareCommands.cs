using System.CommandLine;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;
using Spectre.Console;

namespace KernelDiffusion.Cli;

/// <summary><c>kd trace-inputs</c> writes seeded inputs for kd trace; <c>kd compare</c> sets two safetensors files side by
/// side (two devices' traces, or ours against the reference implementation's).</summary>
static class CompareCommands
{
    public static Command TraceInputs()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "the model the inputs are for", Required = true };
        var config = new Option<string?>("--config") { Description = "model configuration JSON (when the checkpoint carries none)" };
        var batch = new Option<int>("--batch") { Description = "samples", DefaultValueFactory = _ => 2 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "inputs file to write", Required = true };
        var cmd = new Command("trace-inputs", "Write seeded inputs for kd trace: x ~ N(0,1), t uniform on 0..999, y uniform labels, g ~ N(0,1).");
        foreach (var o in new Option[] { checkpoint, config, batch, seed, output }) cmd.Options.Add(o);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string path = r.GetValue(checkpoint)!;
            var c = ModelCheckpoint.ConfigOf(SafeTensorsFile.Read(path), path, r.GetValue(config));
            int n = r.GetValue(batch), s = c.ImageSize;
            if (n < 1) throw new KdException($"trace-inputs: --batch {n} must be at least 1");
            ulong sd = r.GetValue(seed);
            float[] Normal(int count, ulong offset) => Philox.Reference.Draw(count, sd, offset, normal: true).Select(v => (float)v).ToArray();
            var u = Philox.Reference.Draw(2 * n, sd, 1UL << 40, normal: false);
            var tensors = new List<SafeTensorWrite>
            {
                new("x", [n, c.InChannels, s, s], Normal(n * c.InChannels * s * s, 0)),
                new("t", [n], Int64: u.Take(n).Select(v => (long)(v * 1000)).ToArray()),
            };
            if (!c.IsClassifier && c.NumClasses > 0)
                tensors.Add(new("y", [n], Int64: u.Skip(n).Select(v => (long)(v * c.NumClasses)).ToArray()));
            long[] outShape = c.IsClassifier ? [n, c.OutChannels] : [n, c.OutChannels, s, s];
            tensors.Add(new("g", outShape, Normal((int)outShape.Aggregate(1L, (a, b) => a * b), 1UL << 41)));
            SafeTensorsFile.Write(r.GetValue(output)!, tensors, new Dictionary<string, string> { ["seed"] = sd.ToString() });
            AnsiConsole.MarkupLine($"wrote x, t{(tensors.Any(t => t.Name == "y") ? ", y" : "")} and g for batch {n} -> {Markup.Escape(r.GetValue(output)!)}");
            return 0;
        }));
        return cmd;
    }

    public static Command Compare()
    {
        var a = new Argument<string>("a") { Description = "first .safetensors file" };
        var b = new Argument<string>("b") { Description = "second .safetensors file" };
        var tol = new Option<double>("--tolerance") { Description = "largest relative error that passes", DefaultValueFactory = _ => 1e-4 };
        var cmd = new Command("compare", "Relative error ||a - b|| / ||b|| of every tensor the two files share; exit 1 when one exceeds the tolerance.");
        cmd.Arguments.Add(a);
        cmd.Arguments.Add(b);
        cmd.Options.Add(tol);
        cmd.SetAction(r => Common.Guard(() =>
        {
            string pa = r.GetValue(a)!, pb = r.GetValue(b)!;
            var fa = SafeTensorsFile.Read(pa);
            var fb = SafeTensorsFile.Read(pb);
            double limit = r.GetValue(tol);
            var table = new Table().AddColumns("tensor", "shape", "rel. error", "max abs. error", "result");
            int shared = 0, failed = 0;
            foreach (var info in fa.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                if (!fb.Contains(info.Name)) continue;
                shared++;
                var x = fa.ReadFloat32(info.Name);
                var y = fb.ReadFloat32(info.Name);
                if (!info.Shape.SequenceEqual(fb.Info(info.Name).Shape))
                {
                    failed++;
                    table.AddRow(Markup.Escape(info.Name), "differs", "-", "-", "[red]FAIL[/]");
                    continue;
                }
                double num = 0, den = 0, max = 0;
                for (int i = 0; i < x.Length; i++)
                {
                    double e = (double)x[i] - y[i];
                    num += e * e;
                    den += (double)y[i] * y[i];
                    max = Math.Max(max, Math.Abs(e));
                }
                double rel = Math.Sqrt(num / Math.Max(den, 1e-300));
                bool ok = rel <= limit;
                if (!ok) failed++;
                table.AddRow(Markup.Escape(info.Name), Markup.Escape($"[{string.Join(",", info.Shape)}]"), rel.ToString("E2"), max.ToString("E2"), ok ? "[green]pass[/]" : "[red]FAIL[/]");
            }
            if (shared == 0) throw new KdException($"compare: {pa} and {pb} share no tensor names");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"{shared - failed} within {limit:G2}, {failed} beyond ({shared} shared tensors)");
            return failed == 0 ? 0 : 1;
        }));
        return cmd;
    }
}
