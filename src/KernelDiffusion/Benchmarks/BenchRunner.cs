using System.Text.Json.Nodes;
using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Data;
using KernelDiffusion.Diffusion;
using KernelDiffusion.Kernels;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;
using KernelDiffusion.Training;

namespace KernelDiffusion.Benchmarks;

/// <summary>Runs bench/cases.json's cases on one device: every kernel case at each version of its family (the default
/// marked), and the whole-model steps with their launch counts. Inputs are random normal, never zeros.</summary>
public sealed class BenchRunner(ComputeDevice d, Peak peak, BenchTimer timer)
{
    /// <summary>When false, only each family's default version runs.</summary>
    public bool AllVersions { get; init; } = true;

    /// <summary>Versions not to time ("conv=v3", as KernelVersions.Parse reads them); a family's default is timed anyway.</summary>
    public IReadOnlySet<string> SkipVersions { get; init; } = new HashSet<string>();

    /// <summary>One version of a kernel case, ready to run on inputs its PreparedCase owns.</summary>
    public sealed record PreparedRun(string Name, string Version, bool IsDefault, KernelCost Cost, Action Run);

    /// <summary>The runs of a kernel case and the buffers they use.</summary>
    public sealed class PreparedCase(IReadOnlyList<PreparedRun> runs, List<IDisposable> owned) : IDisposable
    {
        public IReadOnlyList<PreparedRun> Runs => runs;
        public void Dispose() { foreach (var t in owned) t.Dispose(); }
    }

    Tensor Random(int[] shape, ulong seed, bool grad = false)
    {
        var t = d.Empty(shape, "bench_input");
        Philox.Draw(d.Accelerator, t.View, t.Length, seed, 0, normal: true);
        t.RequiresGrad = grad;
        return t;
    }

    /// <summary>The backward of a forward + backward case, its inputs' gradients then forgotten as PyTorch's reference
    /// sets them to None: each run writes them anew (as a training step after ZeroGrad), none adds into the last.</summary>
    void Backward(Tensor y, Tensor g, params Tensor?[] inputs)
    {
        d.Tape.Backward(y, g);
        foreach (var t in inputs) t?.ForgetGrad();
    }

    static int[] Shape(JsonObject c, string key) => c[key]!.AsArray().Select(v => (int)v!).ToArray();
    static int Int(JsonObject c, string key) => (int)c[key]!;
    static bool Flag(JsonObject c, string key) => c[key] is JsonNode n && (bool)n;
    /// <summary>A convolution case's kernel side ("r": 1 or 3, padded to keep the size; 3 where absent).</summary>
    static int Side(JsonObject c) => c["r"] is JsonNode n ? (int)n : 3;

    BenchResult Measure(string name, string version, bool isDefault, KernelCost cost, Action run, bool step = false)
    {
        try
        {
            // Whole-model steps take up to seconds each: at least 3 repetitions, not MinReps.
            var (ms, launches) = timer.Time(() => { run(); d.Tape.Reset(); }, step ? 3 : null);
            return new BenchResult(name, version, isDefault, ms, cost, peak.FloorMs(cost), launches,
                LaunchesByKernel: step ? timer.LastLaunchesByKernel : null, HostMs: step ? timer.LastHostMs : null,
                GcPauseMs: step ? timer.LastGcPauseMs : null, GcCollections: step ? timer.LastGcCollections : null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            d.Tape.Reset();
            return new BenchResult(name, version, isDefault, double.NaN, cost, peak.FloorMs(cost), 0, e.GetType().Name + ": " + e.Message);
        }
    }

    /// <summary>A run per version of a family (only the default without AllVersions); run gets the version. Versions
    /// the family says cannot run here (<paramref name="runs"/>: its Runs predicate; for conv also Covers, since a version
    /// that does not cover a geometry runs the default in its place) and SkipVersions are left out, but never the default:
    /// it always gets a row, its time or the error that says why it cannot run (a filtered default once left a case
    /// without any row). A tf32 version (its name ends in Tf32) is costed against the tensor cores' rate, a 3xTF32 one
    /// (Tf32x3: GEMM v21) against a third of it.</summary>
    IEnumerable<PreparedRun> Versions<TV>(string name, TV chosen, KernelCost cost, Action<TV> run, Func<TV, bool>? runs = null) where TV : struct, Enum
        => (AllVersions ? Enum.GetValues<TV>() : [chosen])
            .Where(v => v.Equals(chosen) || (runs?.Invoke(v) ?? true))
            .Where(v => v.Equals(chosen) || !SkipVersions.Contains($"{KernelVersions.FamilyOf(typeof(TV))}=v{Convert.ToInt32(v)}"))
            .Select(v => new PreparedRun(name, KernelVersions.Label(v), v.Equals(chosen), KernelVersions.IsTf32(v) ? cost with { Tf32 = true }
                : KernelVersions.IsTf32x3(v) ? cost with { Tf32 = true, Tf32Passes = 3 } : cost, () => run(v)));

    /// <summary>The same for an op-level run, with the version forced through the device's KernelVersions.</summary>
    IEnumerable<PreparedRun> Forced<TV>(string name, TV chosen, Action<KernelVersions, TV> force, KernelCost cost, Action run,
        Func<TV, bool>? runs = null) where TV : struct, Enum
        => Versions(name, chosen, cost, (TV v) => d.Versions.With(x => force(x, v), () => { run(); return 0; }), runs);

    /// <summary>Times every version of a kernel case; a case that cannot be set up (too large for the device) is one
    /// error row.</summary>
    public IEnumerable<BenchResult> Kernel(JsonObject c)
    {
        PreparedCase prepared;
        try { prepared = Prepare(c); }
        catch (Exception e) when (e is not (OutOfMemoryException or KdException))
        {
            return [new BenchResult((string)c["name"]!, "-", true, double.NaN, default, 0, 0, e.GetType().Name + ": " + e.Message)];
        }
        return MeasureAll(prepared);
    }

    IEnumerable<BenchResult> MeasureAll(PreparedCase prepared)
    {
        using (prepared)
            foreach (var r in prepared.Runs) yield return Measure(r.Name, r.Version, r.IsDefault, r.Cost, r.Run);
    }

    /// <summary>A kernel case's inputs (random normal) and one run per version; disposing frees the inputs.</summary>
    public PreparedCase Prepare(JsonObject c)
    {
        string name = (string)c["name"]!, op = (string)c["op"]!;
        var owned = new List<IDisposable>();
        Tensor R(int[] shape, bool grad) { var t = Random(shape, (ulong)owned.Count + 1, grad); owned.Add(t); return t; }
        try { return new PreparedCase(KernelCase(c, name, op, R, owned).ToList(), owned); }
        catch
        {
            foreach (var t in owned) t.Dispose();
            throw;
        }
    }

    IEnumerable<PreparedRun> KernelCase(JsonObject c, string name, string op, Func<int[], bool, Tensor> R, List<IDisposable> owned)
    {
        var acc = d.Accelerator;
        switch (op)
        {
            case "silu":
            {
                int n = Int(c, "n");
                var (x, o) = (R([n], false), R([n], false));
                foreach (var r in Versions(name, Elementwise.Choose(acc, n), Elementwise.UnaryCost(UnaryOp.Silu, n),
                             (ElementwiseVersion v) => Elementwise.Unary(acc, UnaryOp.Silu, x.View, o.View, 0, 0, n, v)))
                    yield return r;
                break;
            }
            case "sampling_step":
            {
                var s = Shape(c, "x");
                int n = s[0], ch = s[1], hw = s[2] * s[3];
                var (x, eps, next) = (R(s, false), R([2 * n, ch, s[2], s[3]], false), R(s, false));
                var ps = d.FromArray(Enumerable.Range(0, n).SelectMany(_ => new[] { (float)(double)c["w"]!, 0f, 1f, 1f }).ToArray(), [n, SamplingStep.PerSample], "per_sample");
                var ids = acc.Allocate1D(Enumerable.Range(0, n).ToArray());
                owned.Add(ps);
                owned.Add(ids);
                // DDIM, eta 0, at about t = 500 of 1000: constants of that step; no noise.
                var k = new StepConstants { C1 = 1.4f, C2 = 0.98f, A = 0.62f, B = 0, E = 0.78f, Cfg = 1 };
                yield return new PreparedRun(name, "v1", true, SamplingStep.Cost((long)n * ch * hw, k),
                    () => SamplingStep.Step(acc, x.View, eps.View, x.View, ps.View, ids.View, next.View, n, ch, hw, k, 1));
                break;
            }
            case "group_norm":
            {
                var s = Shape(c, "x");
                int groups = Int(c, "groups");
                bool silu = Flag(c, "silu"), back = Flag(c, "backward"), ss = Flag(c, "scale_shift");
                var x = R(s, back);
                var (gamma, beta) = (R([s[1]], back), R([s[1]], back));
                var scaleShift = ss ? R([s[0], 2 * s[1]], back) : null;
                var g = back ? R(s, false) : null;
                var shape = new GroupNormShape { N = s[0], C = s[1], HW = s[2] * s[3], Groups = groups, ScaleShift = ss ? 1 : 0, Silu = silu ? 1 : 0, Eps = 1e-5f };
                var cost = GroupNorm.ForwardCost(shape) + (back ? GroupNorm.BackwardCost(shape) : default);
                // A forward alone is timed, and labelled the default, at the version whose forward kernels run (v5's is v4's).
                var chosen = back ? GroupNorm.Choose(acc, shape) : GroupNorm.ForwardOf(GroupNorm.Choose(acc, shape));
                foreach (var r in Forced(name, chosen, (v, ver) => v.GroupNorm = ver, cost, () =>
                {
                    var y = Ops.GroupNorm(x, gamma, beta, groups, scaleShift, silu);
                    if (back) Backward(y, g!, x, gamma, beta, scaleShift);
                }, v => GroupNorm.Runs(shape, v) && (back || GroupNorm.HasOwnForward(v))))   // a forward alone: not v3 and v5 again
                    yield return r;
                break;
            }
            case "adamw":
            {
                int n = Int(c, "n");
                var (p, g, m) = (R([n], false), R([n], false), R([n], false));
                var v = R([n], false);
                Philox.Draw(acc, v.View, n, 99, 0, normal: false);   // a second moment is not negative
                yield return new PreparedRun(name, "v1", true, Adam.AdamWCost(n),
                    () => Adam.AdamW(acc, p.View, g.View, m.View, v.View, AdamStep.Create(1e-4, 0.9, 0.999, 1e-8, 0.0, 10), n));
                break;
            }
            case "gemm":
            {
                // "batch" (optional): that many independent products, as the GEMMs inside Winograd and attention;
                // "shared_a": one A for the whole batch (a Conv1x1's weight); "trans_a", "trans_b": A stored [k, m], B [n, k].
                int m = Int(c, "m"), n = Int(c, "n"), k = Int(c, "k"), batch = c["batch"] is null ? 1 : Int(c, "batch");
                bool sharedA = Flag(c, "shared_a");
                var (a, b, o) = (R([sharedA ? 1 : batch, m, k], false), R([batch, k, n], false), R([batch, m, n], false));
                var shape = new GemmShape
                {
                    Batch = batch, M = m, N = n, K = k, TransA = Flag(c, "trans_a") ? 1 : 0, TransB = Flag(c, "trans_b") ? 1 : 0,
                    StrideA = sharedA ? 0 : m * k, StrideB = k * n, StrideC = m * n, Alpha = 1,
                };
                foreach (var r in Versions(name, Gemm.Choose(acc, shape), Gemm.Cost(shape), (GemmVersion v) => Gemm.Run(acc, a.View, b.View, o.View, shape, v), v => Gemm.Runs(acc, v)))
                    yield return r;
                break;
            }
            case "conv3x3":
            {
                var s = Shape(c, "x");
                int cout = Int(c, "cout");
                bool back = Flag(c, "backward");
                int side = Side(c);
                var x = R(s, back);
                var (w, b) = (R([cout, s[1], side, side], back), R([cout], back));
                var g = back ? R([s[0], cout, s[2], s[3]], false) : null;
                var geo = ConvGeometry.Create(s[0], s[1], s[2], s[3], cout, side, 1, side / 2);
                var cost = Conv2d.Cost(geo, ConvPass.Forward) + (back ? Conv2d.Cost(geo, ConvPass.InputGrad) + Conv2d.Cost(geo, ConvPass.WeightGrad) : default);
                foreach (var r in Forced(name, Conv2d.Choose(acc, geo), (v, ver) => v.Conv = ver, cost, () =>
                {
                    var y = Ops.Conv2d(x, w, b);
                    if (back) Backward(y, g!, x, w, b);
                }, v => Conv2d.Runs(acc, v) && Conv2d.Covers(geo, v)))
                    yield return r;
                break;
            }
            case "conv3x3_pass":
            {
                // One pass alone at the kernel level (no op, no tape, no pool): which version suits which pass.
                var s = Shape(c, "x");
                int cout = Int(c, "cout");
                var pass = (string)c["pass"]! switch { "forward" => ConvPass.Forward, "input_grad" => ConvPass.InputGrad, _ => ConvPass.WeightGrad };
                int side = Side(c);
                var x = R(s, false);
                var w = R([cout, s[1], side, side], false);
                var dy = R([s[0], cout, s[2], s[3]], false);
                var o = R(pass switch { ConvPass.Forward => [s[0], cout, s[2], s[3]], ConvPass.InputGrad => s, _ => [cout, s[1], side, side] }, false);
                var geo = ConvGeometry.Create(s[0], s[1], s[2], s[3], cout, side, 1, side / 2);
                // The weight gradient of v5 and later splits k as the autodiff op does (each version its own slices); v12's
                // GEMMs run as the op's do (KD_KERNELS gemm=vN or gemm=auto).
                long room = Enum.GetValues<ConvVersion>().Max(v => Conv2d.ScratchLength(acc, geo, pass, v));
                var scratch = room > 0 ? R([(int)room], false).View : default;
                foreach (var r in Versions(name, Conv2d.Choose(acc, geo), Conv2d.Cost(geo, pass),
                             (ConvVersion v) => Conv2d.Run(acc, pass, geo, x.View, w.View, dy.View, w.View, false, o.View, v,
                                 Conv2d.ScratchLength(acc, geo, pass, v) is > 0 and var mine ? scratch.SubView(0, mine) : default,
                                 Ops.GemmAsMatMul(d)),
                             v => Conv2d.Runs(acc, v) && Conv2d.Covers(geo, v)))
                    yield return r;
                break;
            }
            case "sum":
            {
                // A reduction as the backward's bias and broadcast gradients make them (sum_to).
                int[] from = Shape(c, "x"), to = Shape(c, "to");
                var plan = ReducePlan.Create(from, to);
                int outCount = to.Aggregate(1, (p, v) => p * v);
                var (x, y) = (R(from, false), R(to, false));
                var partials = R([(int)Math.Max(1, Reduce.PartialsLength(acc, plan, outCount, ReduceVersion.V3Split))], false);
                foreach (var r in Versions(name, Reduce.Choose(acc, plan, outCount), Reduce.SumCost(x.Length, outCount),
                             (ReduceVersion v) => Reduce.Sum(acc, x.View, y.View, plan, outCount, 1, v, partials.View)))
                    yield return r;
                break;
            }
            case "attention":
            {
                int n = Int(c, "batch"), heads = Int(c, "heads"), ch = Int(c, "head_dim"), tokens = Int(c, "tokens");
                bool back = Flag(c, "backward");
                var qkv = R([n, 3 * heads * ch, tokens], back);
                var g = back ? R([n, heads * ch, tokens], false) : null;
                var shape = new AttentionShape { N = n, C = heads * ch, T = tokens, Heads = heads, NewOrder = 1 };
                var cost = Attention.ForwardCost(shape) + (back ? Attention.BackwardCost(shape) : default);
                foreach (var r in Forced(name, Attention.Choose(acc, shape), (v, ver) => v.Attention = ver, cost, () =>
                {
                    var y = Ops.Attention(qkv, heads, newOrder: true);
                    if (back) Backward(y, g!, qkv);
                }, v => Attention.Runs(acc, shape, v)))
                    yield return r;
                break;
            }
            default:
                throw new KdException($"bench: case '{name}' has an unknown op '{op}'");
        }
    }

    /// <summary>A whole-model case: a training step (forward, loss, backward, clipping, AdamW, EMA), a CFG sampling step
    /// (one forward of 2N plus the fused step), or a classifier guidance gradient; random weights and inputs.</summary>
    public BenchResult Step(JsonObject c, string root)
    {
        string name = (string)c["name"]!, op = (string)c["op"]!;
        int batch = Int(c, "batch");
        d.Pool.Trim();   // the last case's cached buffers: each step's footprint is what the pool allocates for it
        long before = d.Pool.BytesHeld;
        try
        {
            var config = ModelConfig.FromFile(Path.Combine(root, (string)c["config"]!));
            using DiffusionTrunk model = config.IsClassifier ? new Classifier(d, config) : new UNet(d, config);
            model.Initialize(1, randomizeConstants: true);
            var r = op switch
            {
                "train_step" => TrainStep(name, (UNet)model, batch),
                "cfg_step" => CfgStep(name, (UNet)model, batch),
                "classifier_gradient" => GuidanceGradient(name, (Classifier)model, batch),
                _ => new BenchResult(name, "-", true, double.NaN, default, 0, 0, $"unknown op '{op}'"),
            };
            return r with { PoolMiB = (d.Pool.BytesHeld - before) / (1024.0 * 1024) };
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            d.Tape.Reset();
            return new BenchResult(name, "default", true, double.NaN, default, 0, 0, e.GetType().Name + ": " + e.Message);
        }
    }

    BenchResult TrainStep(string name, UNet model, int batch)
    {
        var c = model.Config;
        int classes = Math.Max(1, c.NumClasses - 1), per = c.InChannels * c.ImageSize * c.ImageSize, count = 2 * batch;
        var rng = new Random(1);
        var data = new ImageDataSet
        {
            Source = "random images", Count = count, Channels = c.InChannels, Height = c.ImageSize, Width = c.ImageSize,
            Pixels = Enumerable.Range(0, count * per).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
            Labels = Enumerable.Range(0, count).Select(i => i % classes).ToArray(),
            ClassNames = Enumerable.Range(0, classes).Select(i => $"class {i}").ToList(),
        };
        using var trainer = new Trainer(d, model, data, new TrainOptions { Batch = batch, Steps = int.MaxValue, PUncond = c.NumClasses > 0 ? 0.1 : 0 });
        return Measure(name, "default", true, default, () => trainer.TrainStep(), step: true);
    }

    BenchResult CfgStep(string name, UNet model, int batch)
    {
        const int steps = 4;
        var denoiser = new UNetDenoiser(model);
        var options = new SampleOptions { Steps = steps.ToString(), Seed = 1 };
        var plan = GuidedSampler.Plan("linear", 1000, options, denoiser.LearnsSigma);
        var labels = Enumerable.Range(0, batch).Select(i => i % Math.Max(1, model.Config.NumClasses - 1)).ToArray();
        var b = SampleBatch.Uniform(model.Config.NumClasses > 0 ? labels : null, batch, 3f, 0);
        var r = Measure(name, "default", true, default, () => GuidedSampler.Sample(d, denoiser, null, plan, b, options), step: true);
        return r with
        {
            Ms = r.Ms / steps, Launches = r.Launches / steps, HostMs = r.HostMs / steps, GcPauseMs = r.GcPauseMs / steps,
            GcCollections = r.GcCollections / steps,
            LaunchesByKernel = r.LaunchesByKernel?.ToDictionary(kv => kv.Key, kv => kv.Value / steps),
        };
    }

    BenchResult GuidanceGradient(string name, Classifier model, int batch)
    {
        using var gradient = new ClassifierGradient(model);
        var c = model.Config;
        using var x = Random([batch, c.InChannels, c.ImageSize, c.ImageSize], 3);
        using var t = d.FromArray(Enumerable.Range(0, batch).Select(i => (float)(i * 997 % 1000)).ToArray(), [batch], "t");
        var labels = Enumerable.Range(0, batch).Select(i => i % c.OutChannels).ToArray();
        return Measure(name, "default", true, default, () => gradient.Gradient(x, t, labels), step: true);
    }
}
