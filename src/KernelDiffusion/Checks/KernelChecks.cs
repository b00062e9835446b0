using ILGPU;
using ILGPU.Runtime;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

/// <summary>One kernel checked against its float64 reference: relative error ||out - ref|| / ||ref||.</summary>
public sealed record CheckResult(string Kernel, string Shape, double RelError, double Tolerance, bool Passed, string Note);

/// <summary>The kernel-against-reference checks that <c>kd check</c> runs on any device and the test suite runs on
/// the CPU accelerator. Inputs are fresh normal draws (the seed is in each result's note), every output buffer is
/// poisoned with NaN first, shapes are ragged, each case runs twice on the same inputs (a difference is a race), and
/// each backward is compared with central finite differences of
/// the float64 reference.</summary>
public static partial class KernelChecks
{
    const double Fwd = 1e-5, Bwd = 1e-4;

    /// <summary>One check: runs the kernel on inputs drawn from the Random and returns its error against the reference.</summary>
    public sealed record Case(string Kernel, string Shape, Func<ComputeDevice, Random, (double Err, double Tol, string Note)> Run);

    static readonly List<Case> Cases = Build();

    public static IReadOnlyList<string> Names => Cases.Select(c => $"{c.Kernel} {c.Shape}").ToList();

    public static CheckResult Run(ComputeDevice d, string name, int? seed = null)
    {
        var c = Cases.FirstOrDefault(c => $"{c.Kernel} {c.Shape}" == name) ?? throw new KdException($"check: no check named '{name}'");
        return Run(d, c, seed ?? Random.Shared.Next());
    }

    public static IEnumerable<CheckResult> RunAll(ComputeDevice d, string? filter = null, IReadOnlyCollection<string>? exclude = null)
    {
        foreach (var c in Cases)
            if (Selected(c.Kernel, filter, exclude))
                yield return Run(d, c, Random.Shared.Next());
    }

    /// <summary>Whether a check or kernel named <paramref name="name"/> runs: its name contains <paramref name="filter"/>
    /// (any, if null) and none of <paramref name="exclude"/> (case-insensitive).</summary>
    public static bool Selected(string name, string? filter, IReadOnlyCollection<string>? exclude = null)
        => (filter == null || name.Contains(filter, StringComparison.OrdinalIgnoreCase))
           && (exclude == null || !exclude.Any(x => name.Contains(x, StringComparison.OrdinalIgnoreCase)));

    /// <summary>Runs one case with poisoned outputs, twice on the same inputs.</summary>
    public static CheckResult Run(ComputeDevice d, Case c, int seed)
    {
        bool poison = d.Pool.Poison;
        d.Pool.Poison = true;
        try
        {
            var (err, tol, note) = c.Run(d, new Random(seed));
            note = string.IsNullOrEmpty(note) ? $"seed {seed}" : $"seed {seed}; {note}";
            // The same inputs again: every kernel is deterministic (integer atomics only), so any change is a race.
            d.Tape.Reset();
            var (again, _, _) = c.Run(d, new Random(seed));
            if (!again.Equals(err))
                return new CheckResult(c.Kernel, c.Shape, err, tol, false, $"{note}; a second run on the same inputs gave error {again:E3}: a race");
            return new CheckResult(c.Kernel, c.Shape, err, tol, err <= tol, note);
        }
        catch (Exception e)
        {
            return new CheckResult(c.Kernel, c.Shape, double.NaN, 0, false, $"seed {seed}; {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            d.Tape.Reset();
            d.Pool.Poison = poison;
        }
    }

    // ---- helpers ----

    static string S(int[] s) => "[" + string.Join(",", s) + "]";
    static int Count(int[] s) => s.Aggregate(1, (a, b) => a * b);

    internal static double[] Randn(Random r, int n)
    {
        var x = new double[n];
        for (int i = 0; i < n; i++)
            x[i] = Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
        return x;
    }

    static Tensor Upload(ComputeDevice d, double[] x, int[] shape, string name, bool grad = false)
    {
        var t = d.FromArray(x.Select(v => (float)v).ToArray(), shape, name);
        t.RequiresGrad = grad;
        return t;
    }

    /// <summary>A buffer of n NaNs on acc: an output a kernel must overwrite everywhere it should.</summary>
    static MemoryBuffer1D<float, Stride1D.Dense> Poisoned(Accelerator acc, int n) => acc.Allocate1D(Enumerable.Repeat(float.NaN, n).ToArray());

    public static double RelError(float[] got, double[] want)
    {
        if (got.Length != want.Length) return double.PositiveInfinity;
        double num = 0, den = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double e = got[i] - want[i];
            num += e * e;
            den += want[i] * want[i];
        }
        return double.IsFinite(num) ? Math.Sqrt(num / Math.Max(den, 1e-300)) : double.PositiveInfinity;
    }

    /// <summary>Forward check: device op and float64 reference on the same random inputs. A reduction passes
    /// <paramref name="conditioned"/>: its error is then measured against the reference applied to |x| (a sum of
    /// normals can cancel to nearly zero, which makes ||out - ref|| / ||ref|| meaningless).</summary>
    static Case Forward(string kernel, int[][] shapes, Func<Tensor[], Tensor> op, Func<double[][], double[]> reference, bool conditioned = false)
        => new(kernel, string.Join("x", shapes.Select(S)), (d, r) =>
        {
            var xs = shapes.Select(s => Randn(r, Count(s))).ToArray();
            var ts = xs.Select((x, i) => Upload(d, x, shapes[i], $"in{i}")).ToArray();
            try
            {
                var got = op(ts).ToArray();
                var want = reference(xs);
                if (!conditioned) return (RelError(got, want), Fwd, "");
                var scale = reference(xs.Select(x => x.Select(Math.Abs).ToArray()).ToArray());
                double norm = Math.Sqrt(scale.Sum(v => v * v));
                return (RelError(got, want) * Math.Sqrt(want.Sum(v => v * v)) / norm, Fwd, "error relative to the sum of |x|");
            }
            finally { foreach (var t in ts) t.Dispose(); }
        });

    /// <summary>Backward check: the tape's gradient of L = sum(op(x) * w) for a random w against central
    /// differences of the float64 reference, over every element of every input.</summary>
    static Case Backward(string kernel, int[][] shapes, Func<Tensor[], Tensor> op, Func<double[][], double[]> reference, double tol = Bwd)
        => new(kernel + ".backward", string.Join("x", shapes.Select(S)), (d, r) =>
        {
            var xs = shapes.Select(s => Randn(r, Count(s))).ToArray();
            var w = Randn(r, reference(xs).Length);
            var ts = xs.Select((x, i) => Upload(d, x, shapes[i], $"in{i}", grad: true)).ToArray();
            try
            {
                var y = op(ts);
                using var wt = Upload(d, w, y.Shape, "w");
                d.Tape.Backward(Ops.Sum(Ops.Mul(y, wt)));
                double L(double[][] v) => reference(v).Select((o, i) => o * w[i]).Sum();
                var got = new List<float>();
                var fd = new List<double>();
                const double h = 1e-5;
                for (int k = 0; k < xs.Length; k++)
                {
                    got.AddRange(ts[k].Grad!.ToArray());
                    for (int e = 0; e < xs[k].Length; e++)
                    {
                        double keep = xs[k][e];
                        xs[k][e] = keep + h;
                        double lp = L(xs);
                        xs[k][e] = keep - h;
                        double lm = L(xs);
                        xs[k][e] = keep;
                        fd.Add((lp - lm) / (2 * h));
                    }
                }
                return (RelError(got.ToArray(), fd.ToArray()), tol, "");
            }
            finally { foreach (var t in ts) t.Dispose(); }
        });

    static void Both(List<Case> list, string kernel, int[][] shapes, Func<Tensor[], Tensor> op, Func<double[][], double[]> reference)
    {
        list.Add(Forward(kernel, shapes, op, reference));
        list.Add(Backward(kernel, shapes, op, reference));
    }

    /// <summary>An op with kernel versions forced for its forward (its backward runs later, with the defaults).</summary>
    static Func<Tensor[], Tensor> With(Action<KernelVersions> force, Func<Tensor[], Tensor> f)
        => t => t[0].Device.Versions.With(force, () => f(t));

    /// <summary>A whole check, forward and backward, with kernel versions forced.</summary>
    static Case Forced(Action<KernelVersions> force, Case inner)
        => inner with { Run = (d, r) => d.Versions.With(force, () => inner.Run(d, r)) };

    /// <summary>One conv pass at a version, with the scratch the version asks for (split-k slices, Winograd's transformed
    /// operands), poisoned by the pool as every check's allocation is.</summary>
    static void RunConv(ComputeDevice d, ConvPass pass, ConvGeometry g, Tensor x, Tensor w, Tensor dy, Tensor bias, bool hasBias, Tensor o, ConvVersion v)
    {
        long length = Conv2d.ScratchLength(d.Accelerator, g, pass, v);
        using var scratch = length > 0 ? d.Empty([(int)length], "scratch") : null;
        Conv2d.Run(d.Accelerator, pass, g, x.View, w.View, dy.View, bias.View, hasBias, o.View, v, scratch?.View ?? default);
    }

    /// <summary>Convolution, GroupNorm, attention, resampling, layout, embeddings and dropout (the UNet's kernels).</summary>
    static void AddModelKernels(List<Case> list)
    {
        // Convolution: each pass of each version against the float64 reference, then the op's backward by finite differences.
        // 7 x 8: Winograd's output transforms store whole rows of a tile at once where the width is a multiple of the tile's.
        foreach (var (r, stride, h, w) in new[] { (3, 1, 5, 6), (3, 1, 7, 8), (3, 2, 7, 6), (3, 2, 11, 13), (1, 1, 4, 3) })
        {
            var g = ConvGeometry.Create(2, 3, h, w, 4, r, stride, r / 2);
            int[] xs = [2, 3, h, w], ws = [4, 3, r, r];
            string shape = $"x{S(xs)} w{S(ws)} s{stride}";
            // The tf32 versions (v6, v7) have their own cases: AddTensorCore.
            foreach (var version in Enum.GetValues<ConvVersion>().Where(v => v is not (ConvVersion.V6Tf32 or ConvVersion.V7HoistedTf32)))
            {
                string tag = "v" + (int)version;
                list.Add(new Case($"conv2d.{tag}.forward", shape, (d, rng) =>
                {
                    var (x, wt, b) = (Randn(rng, Count(xs)), Randn(rng, Count(ws)), Randn(rng, 4));
                    using var tx = Upload(d, x, xs, "x");
                    using var tw = Upload(d, wt, ws, "w");
                    using var tb = Upload(d, b, [4], "b");
                    using var y = d.Empty([2, 4, g.Ho, g.Wo], "y");
                    RunConv(d, ConvPass.Forward, g, tx, tw, tx, tb, true, y, version);
                    return (RelError(y.ToArray(), Conv2d.Reference.Forward(x, wt, b, g)), Fwd, "");
                }));
                list.Add(new Case($"conv2d.{tag}.input_and_weight_grad", shape, (d, rng) =>
                {
                    var (x, wt, dy) = (Randn(rng, Count(xs)), Randn(rng, Count(ws)), Randn(rng, 2 * 4 * g.Ho * g.Wo));
                    using var tx = Upload(d, x, xs, "x");
                    using var tw = Upload(d, wt, ws, "w");
                    using var tdy = Upload(d, dy, [2, 4, g.Ho, g.Wo], "dy");
                    using var dx = d.Empty(xs, "dx");
                    using var dw = d.Empty(ws, "dw");
                    RunConv(d, ConvPass.InputGrad, g, tx, tw, tdy, tw, false, dx, version);
                    RunConv(d, ConvPass.WeightGrad, g, tx, tw, tdy, tw, false, dw, version);
                    var (rdx, rdw) = Conv2d.Reference.Backward(x, wt, dy, g);
                    return (Math.Max(RelError(dx.ToArray(), rdx), RelError(dw.ToArray(), rdw)), Fwd, "max over dx, dw");
                }));
            }
            list.Add(Backward("conv2d", [xs, ws, [4]], t => Ops.Conv2d(t[0], t[1], t[2], stride), v => Conv2d.Reference.Forward(v[0], v[1], v[2], g)));
        }
        // The weight gradient split in 3 slices (a GPU's form): the register-tiled versions split k (K = 2*9*10 = 180 is not
        // a multiple of the slices), Winograd its 2*5*5 = 50 tiles of 2x2 or 2*3*3 = 18 of 4x4 (the last slice of 50 is padded).
        var split = ConvGeometry.Create(2, 5, 9, 10, 7, 3, 1, 1);
        Case SplitWeightGrad(string kernel, long scratchFloats, Action<ComputeDevice, Tensor, Tensor, Tensor, Tensor, Tensor> run, int slices = 3)
            => new(kernel, $"x[2,5,9,10] w[7,5,3,3] s1, {slices} slices", (d, rng) =>
            {
                int[] xs = [2, 5, 9, 10], ws = [7, 5, 3, 3], ys = [2, 7, 9, 10];
                var (x, wt, dy) = (Randn(rng, Count(xs)), Randn(rng, Count(ws)), Randn(rng, Count(ys)));
                using var tx = Upload(d, x, xs, "x");
                using var tw = Upload(d, wt, ws, "w");
                using var tdy = Upload(d, dy, ys, "dy");
                using var dw = d.Empty(ws, "dw");
                using var scratch = d.Empty([(int)scratchFloats], "slices");
                run(d, tx, tw, tdy, dw, scratch);
                return (RelError(dw.ToArray(), Conv2d.Reference.Backward(x, wt, dy, split).Dw), Fwd, "");
            });
        foreach (var version in Enum.GetValues<ConvVersion>().Where(v => Conv2d.RegisterBlockRows(v) > 0))
        {
            list.Add(SplitWeightGrad($"conv2d.v{(int)version}.weight_grad_split_k", 3 * 7 * 5 * 9, (d, x, w, dy, dw, scratch)
                => Conv2d.Run(d.Accelerator, ConvPass.WeightGrad, split, x.View, w.View, dy.View, w.View, false, dw.View, version, scratch.View)));
            // 40 slices of 180: each a whole stage of 8, so 23 cover k and 17 are empty (a GPU's 1x1 weight gradients split
            // in up to MaxSplits): an empty slice must write zeros, not leave its scratch as it was.
            list.Add(SplitWeightGrad($"conv2d.v{(int)version}.weight_grad_split_k_empty_slices", 40 * 7 * 5 * 9, (d, x, w, dy, dw, scratch)
                => Conv2d.Run(d.Accelerator, ConvPass.WeightGrad, split, x.View, w.View, dy.View, w.View, false, dw.View, version, scratch.View), 40));
        }
        foreach (var version in Enum.GetValues<ConvVersion>().Where(v => Conv2d.WinogradTile(v) > 0))
        {
            int side = Conv2d.WinogradTile(version);
            list.Add(SplitWeightGrad($"conv2d.v{(int)version}.weight_grad_slices", Winograd.ScratchFloats(split, ConvPass.WeightGrad, 3, side), (d, x, w, dy, dw, scratch)
                => Winograd.Run(d.Accelerator, ConvPass.WeightGrad, split, x.View, w.View, dy.View, w.View, false, dw.View, scratch.View, 3, side)));
        }
        // The tiled versions past one 64 x 64 tile (a GPU's; v9's and v10's are 128 x 128), every pass, ragged in both
        // directions; and Winograd's, whose GEMMs then span several tiles.
        foreach (var version in Enum.GetValues<ConvVersion>().Where(v => v == ConvVersion.V2Tiled || Conv2d.RegisterBlockRows(v) > 0 || Conv2d.WinogradTile(v) > 0))
        {
            int co = Conv2d.RegisterBlockRows(version) == 8 ? 130 : 70;
            list.Add(new Case($"conv2d.v{(int)version}.multi_tile", $"x[2,5,9,10] w[{co},5,3,3] s1", (d, rng) =>
            {
                var g = ConvGeometry.Create(2, 5, 9, 10, co, 3, 1, 1);
                int[] xs = [2, 5, 9, 10], ws = [co, 5, 3, 3], ys = [2, co, 9, 10];
                var (x, wt, b, dy) = (Randn(rng, Count(xs)), Randn(rng, Count(ws)), Randn(rng, co), Randn(rng, Count(ys)));
                using var tx = Upload(d, x, xs, "x");
                using var tw = Upload(d, wt, ws, "w");
                using var tb = Upload(d, b, [co], "b");
                using var tdy = Upload(d, dy, ys, "dy");
                using var y = d.Empty(ys, "y");
                using var dx = d.Empty(xs, "dx");
                using var dw = d.Empty(ws, "dw");
                RunConv(d, ConvPass.Forward, g, tx, tw, tx, tb, true, y, version);
                RunConv(d, ConvPass.InputGrad, g, tx, tw, tdy, tw, false, dx, version);
                RunConv(d, ConvPass.WeightGrad, g, tx, tw, tdy, tw, false, dw, version);
                var (rdx, rdw) = Conv2d.Reference.Backward(x, wt, dy, g);
                double e = Math.Max(RelError(y.ToArray(), Conv2d.Reference.Forward(x, wt, b, g)), Math.Max(RelError(dx.ToArray(), rdx), RelError(dw.ToArray(), rdw)));
                return (e, Fwd, "max over y, dx, dw");
            }));
        }

        // GroupNorm: plain, +SiLU, +scale-shift +SiLU; every forward and backward version.
        int[] gx = [2, 8, 3, 5];
        foreach (var (ss, silu) in new[] { (false, false), (false, true), (true, true) })
        {
            string name = "group_norm" + (ss ? ".scale_shift" : "") + (silu ? ".silu" : "");
            var shape = new GroupNormShape { N = 2, C = 8, HW = 15, Groups = 4, ScaleShift = ss ? 1 : 0, Silu = silu ? 1 : 0, Eps = 1e-5f };
            int[][] shapes = ss ? [gx, [8], [8], [2, 16]] : [gx, [8], [8]];
            Func<Tensor[], Tensor> op = t => Ops.GroupNorm(t[0], t[1], t[2], 4, ss ? t[3] : null, silu);
            Func<double[][], double[]> reference = v => GroupNorm.Reference.Forward(v[0], v[1], v[2], ss ? v[3] : null, shape);
            list.Add(Forward(name + ".v1", shapes, With(v => v.GroupNorm = GroupNormVersion.V1PerGroup, op), reference));
            list.Add(Forward(name + ".v2", shapes, With(v => v.GroupNorm = GroupNormVersion.V2GroupTree, op), reference));
            list.Add(Forward(name + ".v4", shapes, With(v => v.GroupNorm = GroupNormVersion.V4Fused, op), reference));
            // v3's forward is v2's; v4's backward is v3's (after v4's own forward); v5's forward is v4's.
            foreach (var version in Enum.GetValues<GroupNormVersion>())
                list.Add(Forced(v => v.GroupNorm = version, Backward($"{name}.v{(int)version}", shapes, op, reference)));
        }

        // Attention, both head orders, both GEMM versions.
        foreach (bool newOrder in new[] { true, false })
        {
            var a = new AttentionShape { N = 2, C = 8, T = 7, Heads = 2, NewOrder = newOrder ? 1 : 0 };
            string name = newOrder ? "attention.new_order" : "attention.legacy_order";
            Func<Tensor[], Tensor> op = t => Ops.Attention(t[0], 2, newOrder);
            Func<double[][], double[]> reference = v => Attention.Reference.Forward(v[0], a);
            var streaming = With(v => v.Attention = AttentionVersion.V2Streaming, op);
            list.Add(Forward(name + ".v1.gemm_v1", [[2, 24, 7]], With(v => { v.Attention = AttentionVersion.V1Gemm; v.Gemm = GemmVersion.V1Naive; }, op), reference));
            list.Add(Forward(name + ".v1.gemm_v2", [[2, 24, 7]], With(v => { v.Attention = AttentionVersion.V1Gemm; v.Gemm = GemmVersion.V2Tiled; }, op), reference));
            list.Add(Forward(name + ".v1.gemm_v3", [[2, 24, 7]], With(v => { v.Attention = AttentionVersion.V1Gemm; v.Gemm = GemmVersion.V3Rows; }, op), reference));
            list.Add(Forward(name + ".v2", [[2, 24, 7]], streaming, reference));
            list.Add(Forward(name + ".v3", [[2, 24, 7]], With(v => v.Attention = AttentionVersion.V3SharedHead, op), reference));
            list.Add(Forced(v => v.Attention = AttentionVersion.V3SharedHead, Backward(name + ".v3", [[2, 24, 7]], op, reference)));
            // The backward runs with the version the forward chose: force it for the whole check.
            list.Add(Forced(v => v.Attention = AttentionVersion.V1Gemm, Backward(name + ".v1", [[2, 24, 7]], op, reference)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V2Streaming, Backward(name + ".v2", [[2, 24, 7]], op, reference)));
            // v4, v6 (its dQ by GEMM) and v7 (dQ and dK by GEMM), also at ragged tiles: 6 channels (padded to whole column
            // chunks), 13 positions (two query tiles on the CPU).
            var ragged = a with { C = 18, T = 13, Heads = 3 };
            Func<Tensor[], Tensor> op3 = t => Ops.Attention(t[0], 3, newOrder);
            Func<double[][], double[]> reference3 = v => Attention.Reference.Forward(v[0], ragged);
            foreach (var tiled in new[] { AttentionVersion.V4Tiled, AttentionVersion.V6TiledScores, AttentionVersion.V7TiledScoresDk })
            {
                string tag = $".v{(int)tiled}";
                list.Add(Forward(name + tag, [[2, 24, 7]], With(v => v.Attention = tiled, op), reference));
                list.Add(Forced(v => v.Attention = tiled, Backward(name + tag, [[2, 24, 7]], op, reference)));
                list.Add(Forced(v => v.Attention = tiled, Backward(name + ".ragged" + tag, [[2, 54, 13]], op3, reference3)));
            }
            // One head (the classifier's attention pool): samples are then the GEMMs' only batch level.
            var one = a with { N = 3, C = 4, T = 5, Heads = 1 };
            Func<Tensor[], Tensor> op1 = t => Ops.Attention(t[0], 1, newOrder);
            Func<double[][], double[]> reference1 = v => Attention.Reference.Forward(v[0], one);
            list.Add(Forward(name + ".one_head.v1", [[3, 12, 5]], With(v => v.Attention = AttentionVersion.V1Gemm, op1), reference1));
            list.Add(Forced(v => v.Attention = AttentionVersion.V1Gemm, Backward(name + ".one_head.v1", [[3, 12, 5]], op1, reference1)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V2Streaming, Backward(name + ".one_head.v2", [[3, 12, 5]], op1, reference1)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V3SharedHead, Backward(name + ".one_head.v3", [[3, 12, 5]], op1, reference1)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V4Tiled, Backward(name + ".one_head.v4", [[3, 12, 5]], op1, reference1)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V6TiledScores, Backward(name + ".one_head.v6", [[3, 12, 5]], op1, reference1)));
            list.Add(Forced(v => v.Attention = AttentionVersion.V7TiledScoresDk, Backward(name + ".one_head.v7", [[3, 12, 5]], op1, reference1)));
        }

        // v4, v6 and v7 at the reference models' head widths (32 channels: fmnist_unet; 64: adm64), past one 64-row tile:
        // on CUDA their 16 x 8 tiles take more than 48 KB of shared memory (SharedMemoryLimit). Too many inputs for finite
        // differences: the gradient against the analytic float64 one (Attention.Reference.Backward, which a test holds to
        // finite differences).
        foreach (int ch in new[] { 32, 64 })
        foreach (var tiled in new[] { AttentionVersion.V4Tiled, AttentionVersion.V6TiledScores, AttentionVersion.V7TiledScoresDk })
        {
            var wide = new AttentionShape { N = 1, C = 2 * ch, T = 70, Heads = 2, NewOrder = 1 };
            list.Add(Forced(v => v.Attention = tiled, new Case($"attention.wide_heads{ch}.v{(int)tiled}.forward_backward",
                $"[1,{3 * wide.C},{wide.T}] {ch}-channel heads", (d, r) =>
                {
                    var (x, w) = (Randn(r, 3 * wide.C * wide.T), Randn(r, wide.C * wide.T));
                    using var qkv = Upload(d, x, [1, 3 * wide.C, wide.T], "qkv", grad: true);
                    using var weights = Upload(d, w, [1, wide.C, wide.T], "w");
                    var y = Ops.Attention(qkv, wide.Heads, true);
                    d.Tape.Backward(Ops.Sum(Ops.Mul(y, weights)));
                    double forward = RelError(y.ToArray(), Attention.Reference.Forward(x, wide));
                    double backward = RelError(qkv.Grad!.ToArray(), Attention.Reference.Backward(x, w, wide));
                    return (Math.Max(forward, backward), Bwd, $"forward {forward:G2}, gradient {backward:G2} against the analytic one");
                })));
        }

        // Resampling (odd sizes for the pool), concat along channels and along the last axis, slice.
        Both(list, "upsample", [[2, 3, 4, 5]], t => Ops.Upsample2x(t[0]), v => Resample.Reference.Up(v[0], 6, 4, 5));
        Both(list, "avg_pool", [[2, 3, 6, 4]], t => Ops.AvgPool2x(t[0]), v => Resample.Reference.Pool(v[0], 6, 6, 4));
        Both(list, "avg_pool", [[2, 3, 7, 5]], t => Ops.AvgPool2x(t[0]), v => Resample.Reference.Pool(v[0], 6, 7, 5));
        Both(list, "concat", [[2, 3, 4, 5], [2, 5, 4, 5]], t => Ops.Concat(t[0], t[1], 1), v => Layout.Reference.Concat(v[0], v[1], 2, 60, 100));
        Both(list, "concat", [[2, 3, 1], [2, 3, 7]], t => Ops.Concat(t[0], t[1], 2), v => Layout.Reference.Concat(v[0], v[1], 6, 1, 7));
        Both(list, "slice", [[2, 3, 8]], t => Ops.Slice(t[0], 2, 1, 5),
            v => Layout.Reference.Slice(v[0], 6, 5, 8, 1));

        // Embeddings and dropout.
        list.Add(new Case("timestep_embedding", "t[5] dim 33", (d, rng) =>
        {
            var t = Enumerable.Range(0, 5).Select(_ => rng.NextDouble() * 1000).ToArray();
            using var tt = Upload(d, t, [5], "t");
            // The argument t * f is formed in fp32 (as the reference implementation does): about |t| 6e-8 off.
            return (RelError(Ops.TimestepEmbedding(tt, 33).ToArray(), Embedding.Reference.Timestep(t, 33)), 1e-4, "fp32 arguments up to t = 1000");
        }));
        int[] labels = [2, 0, 2, 4];
        Both(list, "embedding", [[5, 6]], t => Ops.Embedding(t[0], t[0].Device.TemporaryLabels(labels, 5)),
            v => Embedding.Reference.Lookup(v[0], labels, 6));
        Both(list, "dropout", [[3, 5, 7]], t => Ops.Dropout(t[0], 0.3f, 1234, 5),
            v => Kernels.Dropout.Reference.Apply(v[0], (double)0.3f, 1234, 5));
    }

    /// <summary>The learn_sigma variational-bound term at t = 0 (decoder NLL, edge pixels included) and t &gt; 0 (KL):
    /// forward against float64, the gradient with respect to v against central differences.</summary>
    static void AddDiffusionLoss(List<Case> list)
    {
        const int b = 3, per = 30;
        var s = Diffusion.NoiseSchedule.Named("linear", 1000);
        int[] times = [0, 10, 600];
        double[] Coefs()
        {
            return times.SelectMany(t => new[]
            {
                1 / s.SqrtAlphasCumprod[t], Math.Sqrt(1 / s.AlphasCumprod[t] - 1), s.PosteriorMeanCoef1[t], s.PosteriorMeanCoef2[t],
                s.PosteriorLogVarianceClipped[t], Math.Log(s.Betas[t]), t == 0 ? 1.0 : 0.0,
            }).ToArray();
        }
        (double[] Eps, double[] V, double[] Xt, double[] X0) Inputs(Random r)
        {
            var x0 = Enumerable.Range(0, b * per).Select(i => i % 7 == 0 ? -1.0 : i % 11 == 0 ? 1.0 : 2 * r.NextDouble() - 1).ToArray();
            var eps = Randn(r, b * per);
            // x_t drawn as the schedule draws it at each row's t, so the predicted mean lies near x_0 as in training.
            var xt = x0.Select((x, i) => s.SqrtAlphasCumprod[times[i / per]] * x + s.SqrtOneMinusAlphasCumprod[times[i / per]] * eps[i]).ToArray();
            var epsPred = eps.Select(e => e + 0.05 * (r.NextDouble() - 0.5)).ToArray();
            return (epsPred, Enumerable.Range(0, b * per).Select(_ => 1.8 * r.NextDouble() - 0.9).ToArray(), xt, x0);
        }
        list.Add(new Case("learned_range_vb", $"[{b},{per}]", (d, r) =>
        {
            var (eps, v, xt, x0) = Inputs(r);
            var c = Coefs();
            using var te = Upload(d, eps, [b, per], "eps");
            using var tv = Upload(d, v, [b, per], "v", grad: true);
            using var tx = Upload(d, xt, [b, per], "x_t");
            using var t0 = Upload(d, x0, [b, per], "x_0");
            using var tc = Upload(d, c, [b, DiffusionLoss.Coefs], "coefs");
            var o = Ops.LearnedRangeVb(te, tv, tx, t0, tc);
            double Vb(double[] vv, int i) => DiffusionLoss.Reference.Vb(eps, vv, xt, x0, c, per).Skip(i * per).Take(per).Average();
            double fwd = RelError(o.ToArray(), Enumerable.Range(0, b).Select(i => Vb(v, i)).ToArray());
            var w = Randn(r, b);
            using var tw = Upload(d, w, [b], "w");
            d.Tape.Backward(Ops.Sum(Ops.Mul(o, tw)));
            var got = tv.Grad!.ToArray();
            var fd = new double[v.Length];
            for (int k = 0; k < v.Length; k++)
            {
                double keep = v[k];
                v[k] = keep + 1e-5;
                double lp = Enumerable.Range(0, b).Sum(i => w[i] * Vb(v, i));
                v[k] = keep - 1e-5;
                double lm = Enumerable.Range(0, b).Sum(i => w[i] * Vb(v, i));
                v[k] = keep;
                fd[k] = (lp - lm) / 2e-5;
            }
            double bwd = RelError(got, fd);
            return (Math.Max(fwd / Fwd, bwd / Bwd), 1, $"forward {fwd:E2} (tolerance {Fwd:E0}), d/dv {bwd:E2} (tolerance {Bwd:E0}); shown as the larger ratio to its tolerance");
        }));
    }

    // ---- the cases ----

    static List<Case> Build()
    {
        var list = new List<Case>();

        // Elementwise with the broadcasts a UNet needs.
        int[] x4 = [2, 5, 3, 7];
        foreach (var (name, kind) in new[] { ("add", BinaryOp.Add), ("sub", BinaryOp.Sub), ("mul", BinaryOp.Mul) })
        {
            Func<Tensor, Tensor, Tensor> f = kind switch { BinaryOp.Add => Ops.Add, BinaryOp.Sub => Ops.Sub, _ => Ops.Mul };
            foreach (var b in new[] { x4, [5, 1, 1], [2, 1, 1, 1], [2, 5, 1, 1], [7] })
            {
                var bs = b;
                Both(list, name, [x4, bs], t => f(t[0], t[1]),
                    v => Elementwise.Reference.Binary(kind, v[0], x4, v[1], bs, x4));
            }
        }
        Both(list, "add", [[3, 1, 7], [5, 1]], t => Ops.Add(t[0], t[1]),
            v => Elementwise.Reference.Binary(BinaryOp.Add, v[0], [3, 1, 7], v[1], [5, 1], [3, 5, 7]));
        Both(list, "scale", [[37]], t => Ops.Scale(t[0], -1.7f, 0.3f), v => Elementwise.Reference.Affine(v[0], -1.7f, 0.3f));
        Both(list, "silu", [[3, 5, 7]], t => Ops.Silu(t[0]), v => Elementwise.Reference.Silu(v[0]));
        list.Add(Forward("clamp", [[3, 5, 7]], t => Ops.Clamp(t[0], -0.5f, 0.7f), v => Elementwise.Reference.Clamp(v[0], -0.5, 0.7)));
        // The float4 version (a GPU's default from 1024 elements): lengths with each remainder mod 4.
        foreach (int n in new[] { 4099, 1026, 1027, 1024 })
        {
            var v2 = (Action<KernelVersions>)(v => v.Elementwise = ElementwiseVersion.V2Float4);
            list.Add(Forward("silu.v2", [[n]], With(v2, t => Ops.Silu(t[0])), v => Elementwise.Reference.Silu(v[0])));
            list.Add(Forward("scale.v2", [[n]], With(v2, t => Ops.Scale(t[0], -1.7f, 0.3f)), v => Elementwise.Reference.Affine(v[0], -1.7f, 0.3f)));
            list.Add(Forward("clamp.v2", [[n]], With(v2, t => Ops.Clamp(t[0], -0.5f, 0.7f)), v => Elementwise.Reference.Clamp(v[0], -0.5, 0.7)));
        }

        // Sum and mean over chosen axes, every kernel version (v4 and v5 where the summed elements lie a constant step apart:
        // the mean over [2, 3], the sum of 1001 and the sum over the first axis; v1 elsewhere); their backward (an expand)
        // uses none, so it is checked once.
        int[] rs = [3, 5, 7, 2];
        Func<double[][], double[]> sum = v => Reduce.Reference.Sum(v[0], rs, [1, 5, 1, 2], 1);
        Func<double[][], double[]> mean = v => Reduce.Reference.Sum(v[0], rs, [3, 5, 1, 1], 1.0 / 14);
        foreach (var version in Enum.GetValues<ReduceVersion>())
        {
            string tag = "v" + (int)version;
            Func<Tensor[], Tensor> Reduced(Func<Tensor[], Tensor> f) => With(v => v.Reduce = version, f);
            list.Add(Forward($"sum.{tag}", [rs], Reduced(t => Ops.Sum(t[0], [0, 2])), sum, conditioned: true));
            list.Add(Forward($"mean.{tag}", [rs], Reduced(t => Ops.Mean(t[0], [2, 3])), mean, conditioned: true));
            list.Add(Forward($"sum.{tag}", [[1001]], Reduced(t => Ops.Sum(t[0])), v => Reduce.Reference.Sum(v[0], [1001], [1], 1), conditioned: true));
            // Over the first axis, a constant step apart (as the 1x1 weight-gradient products): v4's strided run.
            list.Add(Forward($"sum.{tag}", [[5, 6, 7]], Reduced(t => Ops.Sum(t[0], [0])), v => Reduce.Reference.Sum(v[0], [5, 6, 7], [1, 6, 7], 1), conditioned: true));
        }
        // v2 in 256-thread groups (a GPU's launch shape): each thread's stride of 256 carries across several digits of
        // the reduced index, as a conv bias's gradient over [N, C, H, W] does; 680 and 1001 elements per output. v3 with
        // each output's sum split into 3 and 7 slices (the last one shorter), on this device's groups and on 256-thread groups.
        // The sum of shape to outShape, half of it, by sum on this device, in 256-thread groups of 4-lane warps (groups256)
        // or in 128-thread groups of 32-lane warps (warps32), against float64.
        Case SumCase(string name, int[] shape, int[] outShape, string groups, Action<Accelerator, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>> sum)
            => new(name, $"[{string.Join(",", shape)}] to [{string.Join(",", outShape)}]", (d, r) =>
            {
                var x = Randn(r, shape.Aggregate(1, (a, b) => a * b));
                float[] Run(Accelerator acc)
                {
                    using var dx = acc.Allocate1D(x.Select(v => (float)v).ToArray());
                    using var dy = Poisoned(acc, outShape.Aggregate(1, (a, b) => a * b));
                    sum(acc, dx.View, dy.View);
                    return dy.GetAsArray1D();
                }
                string where = "";
                float[] got = groups switch
                {
                    "groups256" => OnGroupsOf256(d, Run, out where),
                    "warps32" => On32LaneGroups(d, 128, "", Run, out where),
                    _ => Run(d.Accelerator),
                };
                return (RelError(got, Reduce.Reference.Sum(x, shape, outShape, 0.5)), Fwd, where.TrimStart(';', ' '));
            });
        foreach (var (shape, outShape) in new[] { (new[] { 3, 40, 2, 17 }, new[] { 3, 1, 2, 1 }), (new[] { 11, 4, 13, 7 }, new[] { 1, 4, 1, 1 }) })
        {
            int outCount = outShape.Aggregate(1, (a, b) => a * b);
            var plan = ReducePlan.Create(shape, outShape);
            list.Add(SumCase("sum.v2.groups256", shape, outShape, "groups256", (acc, x, y) => Reduce.Sum(acc, x, y, plan, outCount, 0.5f, ReduceVersion.V2GroupTree)));

            foreach (int slices in new[] { 3, 7 })
            foreach (bool groups256 in new[] { false, true })
                list.Add(SumCase($"sum.v3.slices{slices}{(groups256 ? ".groups256" : "")}", shape, outShape, groups256 ? "groups256" : "", (acc, x, y) =>
                {
                    using var partials = Poisoned(acc, outCount * slices);
                    Reduce.SumSplit(acc, x, y, plan, outCount, 0.5f, slices, partials.View);
                    acc.Synchronize();   // before the partials go
                }));
        }
        // v5 in a GPU's shapes: 32-lane warps in groups of 128 (a strided run in 4 slices) and 4-lane warps in groups of 256
        // (64 slices), at contiguous runs (step 1, 99 values an output: ragged against the lanes) and strided ones (step
        // 210, 37 values an output, so the last slice is shorter or empty; 210 outputs: ragged against the lanes).
        foreach (var (shape, outShape) in new[] { (new[] { 6, 10, 9, 11 }, new[] { 6, 10, 1, 1 }), (new[] { 37, 3, 70, 1 }, new[] { 1, 3, 70, 1 }) })
        foreach (var groups in new[] { "warps32", "groups256" })
        {
            int outCount = outShape.Aggregate(1, (a, b) => a * b);
            var plan = ReducePlan.Create(shape, outShape);
            list.Add(SumCase($"sum.v5.{groups}", shape, outShape, groups, (acc, x, y) => Reduce.Sum(acc, x, y, plan, outCount, 0.5f, ReduceVersion.V5WarpRuns)));
        }
        // The training step's gradient norm: partial sums of squares in one launch, added here in float64.
        list.Add(new Case("sum_of_squares", "[100003]", (d, r) =>
        {
            var x = Randn(r, 100003);
            using var t = Upload(d, x, [x.Length], "x");
            int count = Reduce.SumOfSquaresPartials(d.Accelerator);
            using var partials = d.FromArray(Enumerable.Repeat(float.NaN, count).ToArray(), [count], "partials");
            Reduce.SumOfSquares(d.Accelerator, t.View, partials.View, x.Length);
            double got = partials.ToArray().Sum(v => (double)v), want = x.Sum(v => (double)(float)v * (float)v);
            return (Math.Abs(got - want) / want, Fwd, $"{count} partials");
        }));
        // The autotuner's comparison: the largest |a - b| in one launch; a NaN anywhere makes it +Inf.
        list.Add(new Case("max_abs_difference", "[100003], |a - b| and |a|, and with a NaN", (d, r) =>
        {
            var (a, b) = (Randn(r, 100003), Randn(r, 100003));
            using var ta = Upload(d, a, [a.Length], "a");
            using var tb = Upload(d, b, [b.Length], "b");
            using var largest = d.Accelerator.Allocate1D<uint>(1);
            float got = Reduce.MaxAbsDifference(d.Accelerator, ta.View, tb.View, largest.View, a.Length);
            double want = a.Zip(b).Max(p => Math.Abs((double)(float)p.First - (float)p.Second));
            using var nan = Upload(d, b.Select((v, i) => i == 77_777 ? double.NaN : v).ToArray(), [b.Length], "b with a NaN");
            float withNan = Reduce.MaxAbsDifference(d.Accelerator, ta.View, nan.View, largest.View, a.Length);
            // MaxAbs: a's own largest magnitude (the tuner's scale), +Inf over the NaN.
            float magnitude = Reduce.MaxAbs(d.Accelerator, ta.View, largest.View, a.Length), nanMagnitude = Reduce.MaxAbs(d.Accelerator, nan.View, largest.View, a.Length);
            double wantMagnitude = a.Max(v => Math.Abs((double)(float)v));
            bool infinities = float.IsPositiveInfinity(withNan) && float.IsPositiveInfinity(nanMagnitude);
            return (infinities ? Math.Max(Math.Abs(got - want) / want, Math.Abs(magnitude - wantMagnitude) / wantMagnitude) : double.PositiveInfinity, Fwd,
                $"largest difference {got:G4}, largest magnitude {magnitude:G4}; with a NaN {withNan} and {nanMagnitude}");
        }));
        list.Add(Backward("sum", [rs], t => Ops.Sum(t[0], [0, 2]), sum));
        list.Add(Backward("mean", [rs], t => Ops.Mean(t[0], [2, 3]), mean));

        // Batched GEMM: all four transposes, ragged shapes, a shared operand, and alpha / beta at the kernel level.
        foreach (var version in new[] { GemmVersion.V1Naive, GemmVersion.V2Tiled, GemmVersion.V3Rows, GemmVersion.V4Blocked, GemmVersion.V6Blocked8, GemmVersion.V7Vector, GemmVersion.V8Vector4, GemmVersion.V9CpuBlocks,
            GemmVersion.V10Pipelined, GemmVersion.V11Pipelined4 })
        {
            string tag = "v" + (int)version;
            const int B = 2, M = 17, N = 19, K = 23;
            foreach (var (ta, tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
            {
                int[] sa = ta ? [B, K, M] : [B, M, K], sb = tb ? [B, N, K] : [B, K, N];
                var shape = new GemmShape { Batch = B, M = M, N = N, K = K, TransA = ta ? 1 : 0, TransB = tb ? 1 : 0, StrideA = M * K, StrideB = K * N, StrideC = M * N, Alpha = 1 };
                string kernel = $"gemm.{tag}.{(ta ? "t" : "n")}{(tb ? "t" : "n")}";
                var op = With(v => v.Gemm = version, t => Ops.MatMul(t[0], t[1], ta, tb));
                list.Add(Forward(kernel, [sa, sb], op, v => Gemm.Reference.Run(v[0], v[1], null, shape)));
                // The backward runs after the version is restored: one check per transpose pair covers it.
                if (version == GemmVersion.V1Naive)
                    list.Add(Backward($"matmul.{(ta ? "t" : "n")}{(tb ? "t" : "n")}", [sa, sb], op, v => Gemm.Reference.Run(v[0], v[1], null, shape)));
            }
            list.Add(new Case($"gemm.{tag}.alpha_beta_shared_b", "[3,9,13]x[13,11]", (d, r) =>
            {
                var s = new GemmShape { Batch = 3, M = 9, N = 11, K = 13, StrideA = 9 * 13, StrideB = 0, StrideC = 9 * 11, Alpha = -0.7f, Beta = 1.3f };
                var (a, b, c) = (Randn(r, 3 * 9 * 13), Randn(r, 13 * 11), Randn(r, 3 * 9 * 11));
                using var ta = Upload(d, a, [3, 9, 13], "a");
                using var tb = Upload(d, b, [13, 11], "b");
                using var tc = Upload(d, c, [3, 9, 11], "c");
                Gemm.Run(d.Accelerator, ta.View, tb.View, tc.View, s, version);
                return (RelError(tc.ToArray(), Gemm.Reference.Run(a, b, c, s)), Fwd, "");
            }));
            // More than one 64 x 64 tile (v4, v8, v11 on a GPU; 128 x 128 for v6, v7, v10) with ragged edges in both directions.
            bool wide = Gemm.BlockRows(version) == 8;
            int tm = wide ? 140 : 70, tn = wide ? 135 : 67;
            list.Add(Forward($"gemm.{tag}.multi_tile", [[tm, 33], [33, tn]], With(v => v.Gemm = version, t => Ops.MatMul(t[0], t[1])),
                v => Gemm.Reference.Run(v[0], v[1], null, new GemmShape { Batch = 1, M = tm, N = tn, K = 33, Alpha = 1 })));
        }
        Both(list, "matmul.shared_b", [[3, 4, 5], [5, 6]], t => Ops.MatMul(t[0], t[1]),
            v => Gemm.Reference.Run(v[0], v[1], null, new GemmShape { Batch = 3, M = 4, N = 6, K = 5, StrideA = 20, StrideB = 0, StrideC = 24, Alpha = 1 }));
        Both(list, "linear", [[5, 7], [3, 7], [3]], t => Ops.Linear(t[0], t[1], t[2]), v =>
        {
            var y = Gemm.Reference.Run(v[0], v[1], null, new GemmShape { Batch = 1, M = 5, N = 3, K = 7, TransB = 1, Alpha = 1 });
            return y.Select((o, i) => o + v[2][i % 3]).ToArray();
        });

        // Softmax family.
        Both(list, "softmax", [[6, 11]], t => Ops.Softmax(t[0]), v => Softmax.Reference.Forward(v[0], 6, 11, log: false));
        Both(list, "log_softmax", [[6, 11]], t => Ops.LogSoftmax(t[0]), v => Softmax.Reference.Forward(v[0], 6, 11, log: true));
        int[] labels = [3, 0, 10, 7, 7, 1];
        Both(list, "cross_entropy", [[6, 11]], t => Ops.CrossEntropy(t[0], t[0].Device.TemporaryLabels(labels, 11)),
            v => Softmax.Reference.CrossEntropy(v[0], labels, 6, 11));

        // Philox: the Random123 known answers, the device stream against the reference, and the moments.
        list.Add(new Case("philox.known_answers", "3 vectors", (_, _) =>
        {
            uint[][] cases =
            [
                [0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
                [~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ];
            int wrong = 0;
            foreach (var c in cases)
            {
                uint c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
                Philox.Rounds(ref c0, ref c1, ref c2, ref c3, c[4], c[5]);
                if (c0 != c[6] || c1 != c[7] || c2 != c[8] || c3 != c[9]) wrong++;
            }
            return (wrong, 0, $"{wrong} of 3 wrong");
        }));
        foreach (bool normal in new[] { false, true })
            list.Add(new Case(normal ? "philox.normal" : "philox.uniform", "[1001]", (d, r) =>
            {
                ulong seed = (ulong)r.NextInt64(), offset = (ulong)r.Next(1 << 20);
                var t = normal ? Ops.Normal(d, [1001], seed, offset) : Ops.Uniform(d, [1001], seed, offset);
                return (RelError(t.ToArray(), Philox.Reference.Draw(1001, seed, offset, normal)), Fwd, "");
            }));
        list.Add(new Case("philox.normal_moments", "[1000003]", (d, r) =>
        {
            var x = Ops.Normal(d, [1000003], (ulong)r.NextInt64()).ToArray();
            double mean = x.Average(v => (double)v), variance = x.Average(v => (double)v * v) - mean * mean;
            // Standard errors: mean 1e-3, variance 1.4e-3; allow six (a false alarm about once in 10^8 runs).
            double err = Math.Max(Math.Abs(mean) / 1e-3, Math.Abs(variance - 1) / 1.4e-3);
            return (err, 6, $"mean {mean:F5}, variance {variance:F5} (error in standard errors)");
        }));

        AddModelKernels(list);
        AddDiffusionLoss(list);
        AddSampling(list);
        AddTensorCore(list);
        AddPipelined(list);
        AddWarpRows(list);

        // AdamW and EMA.
        list.Add(new Case("adamw", "[1003]", (d, r) =>
        {
            const int n = 1003;
            var (p, g, m) = (Randn(r, n), Randn(r, n), Randn(r, n));
            var v = Randn(r, n).Select(Math.Abs).ToArray();
            using var tp = Upload(d, p, [n], "p");
            using var tg = Upload(d, g, [n], "g");
            using var tm = Upload(d, m, [n], "m");
            using var tv = Upload(d, v, [n], "v");
            Adam.AdamW(d.Accelerator, tp.View, tg.View, tm.View, tv.View, AdamStep.Create(1e-2, 0.9, 0.999, 1e-8, 0.1, 3), n);
            var (rp, rm, rv) = Adam.Reference.AdamW(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.1, 3);
            return (new[] { RelError(tp.ToArray(), rp), RelError(tm.ToArray(), rm), RelError(tv.ToArray(), rv) }.Max(), Fwd, "max over p, m, v");
        }));
        list.Add(new Case("ema", "[1003]", (d, r) =>
        {
            var (e, p) = (Randn(r, 1003), Randn(r, 1003));
            using var te = Upload(d, e, [1003], "ema");
            using var tp = Upload(d, p, [1003], "p");
            Adam.Ema(d.Accelerator, te.View, tp.View, 0.99f, 1003);
            return (RelError(te.ToArray(), Adam.Reference.Ema(e, p, 0.99)), Fwd, "");
        }));
        return list;
    }
}
