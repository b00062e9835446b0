using ILGPU;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>GroupNorm of x [N, C, ...] with per-channel gamma and beta [C], fused with the optional
    /// scale-shift of use_scale_shift_norm (z = y (1 + ss[:, :C]) + ss[:, C:], ss [N, 2C]) and an optional SiLU.</summary>
    public static Tensor GroupNorm(Tensor x, Tensor gamma, Tensor beta, int groups = 32, Tensor? scaleShift = null, bool silu = false, float eps = 1e-5f)
    {
        var d = scaleShift == null ? Inputs("group_norm", x, gamma, beta) : Inputs("group_norm", x, gamma, beta, scaleShift);
        if (x.Rank < 2) throw new KdException($"group_norm: '{x.Name}' {x.ShapeText} needs at least [N, C]");
        int n = x.Dim(0), c = x.Dim(1), hw = x.Length / (n * c);
        if (c % groups != 0) throw new KdException($"group_norm: {c} channels of '{x.Name}' {x.ShapeText} do not divide into {groups} groups");
        if (gamma.Length != c || beta.Length != c)
            throw new KdException($"group_norm: gamma '{gamma.Name}' {gamma.ShapeText} and beta '{beta.Name}' {beta.ShapeText} must have {c} elements");
        if (scaleShift != null && (scaleShift.Rank != 2 || scaleShift.Dim(0) != n || scaleShift.Dim(1) != 2 * c))
            throw new KdException($"group_norm: scale-shift '{scaleShift.Name}' {scaleShift.ShapeText} must be [{n}, {2 * c}]");
        var s = new GroupNormShape { N = n, C = c, HW = hw, Groups = groups, ScaleShift = scaleShift == null ? 0 : 1, Silu = silu ? 1 : 0, Eps = eps };
        var stats = Output(d, [2, n * groups], "group_norm_stats");
        var y = Output(d, x.Shape, "group_norm");
        var ss = (scaleShift ?? x).View;
        Tuned(d, "forward", s, Kernels.GroupNorm.HasOwnForward,
            v => Kernels.GroupNorm.Forward(d.Accelerator, s, x.View, gamma.View, beta.View, ss, stats.View, y.View, v), stats.View, y.View);
        Tensor[] inputs = scaleShift == null ? [x, gamma, beta] : [x, gamma, beta, scaleShift];
        RecordReference(d, "group_norm", y, v => Kernels.GroupNorm.Reference.Forward(v[0], v[1], v[2], scaleShift == null ? null : v[3], s), inputs);
        if (d.Tape.ShouldRecord(inputs))
            d.Tape.Record("group_norm", y, g =>
            {
                var sums = Output(d, [2, n, c], "group_norm_sums");
                var dss = scaleShift == null ? (GradSink?)null : GradOutput(d, scaleShift, "group_norm_scale_shift_grad");
                var dx = GradOutput(d, x, "group_norm_grad");
                Tuned(d, "backward", s, v => Kernels.GroupNorm.Runs(s, v) && v != GroupNormVersion.V4Fused,   // v4's backward is v3's
                    v => Kernels.GroupNorm.Backward(d.Accelerator, s, x.View, gamma.View, beta.View, ss, stats.View, g.View, sums.View, (dss ?? dx).View, dx.View, v),
                    dss == null ? [sums.View, dx.View] : [sums.View, dss.Value.View, dx.View]);
                dx.Commit();
                dss?.Commit();
                // sums holds [dgamma; dbeta] terms per sample and channel, summed over the batch into the two gradients:
                // one reduction where they lie back to back (a GroupNorm layer's, in AdamW's gradient arena), else two.
                GradSink? dgamma = gamma.RequiresGrad ? GradOutput(d, gamma, "group_norm_param_grad") : null;
                GradSink? dbeta = beta.RequiresGrad ? GradOutput(d, beta, "group_norm_param_grad") : null;
                if (dgamma is { Direct: true } a && dbeta is { Direct: true } b && Tensor.Span([a.Buffer, b.Buffer]) is { } both)
                    RunSum(d, sums.View, both, ReducePlan.Create([2, n, c], [2, 1, c]), 2 * c, 1);
                else
                    for (int half = 0; half < 2; half++)
                        if ((half == 0 ? dgamma : dbeta) is { } sink)
                        {
                            RunSum(d, sums.View.SubView(half * n * c, n * c), sink.View, ReducePlan.Create([n, c], [1, c]), c, 1);
                            sink.Commit();
                        }
            });
        return y;
    }

    /// <summary>A GroupNorm pass at the forced version, else the tuned one (groupnorm=auto: among those <paramref name="runs"/>
    /// allows), else the accelerator's default for the shape.</summary>
    static void Tuned(ComputeDevice d, string pass, GroupNormShape s, Func<GroupNormVersion, bool> runs, Action<GroupNormVersion> run,
        params ArrayView<float>[] outputs)
        => d.RunVersion("groupnorm", d.Versions.GroupNorm, Kernels.GroupNorm.Choose(d.Accelerator, s),
            () => $"{pass} N{s.N} C{s.C} HW{s.HW} G{s.Groups}{(s.ScaleShift != 0 ? " +scale-shift" : "")}{(s.Silu != 0 ? " +silu" : "")}",
            () => Enum.GetValues<GroupNormVersion>().Where(runs), run, outputs);
}
