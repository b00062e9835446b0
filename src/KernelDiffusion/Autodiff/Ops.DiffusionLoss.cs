using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>guided-diffusion's variational-bound term for learn_sigma, per sample [B] (mean over its elements, in
    /// bits): KL to the true posterior for t &gt; 0, the discretised decoder NLL at t = 0. eps, x_t and x_0 are
    /// constants here (the reference detaches eps for this term); the gradient flows to v only. coefs is [B, 7] (see
    /// DiffusionLoss).</summary>
    public static Tensor LearnedRangeVb(Tensor eps, Tensor v, Tensor xt, Tensor x0, Tensor coefs)
    {
        var d = Inputs("learned_range_vb", eps, v, xt, x0, coefs);
        if (!eps.Shape.SequenceEqual(v.Shape) || !xt.Shape.SequenceEqual(v.Shape) || !x0.Shape.SequenceEqual(v.Shape))
            throw new KdException($"learned_range_vb: eps {eps.ShapeText}, v {v.ShapeText}, x_t {xt.ShapeText} and x_0 {x0.ShapeText} must share one shape");
        int b = v.Dim(0), per = v.Length / b;
        if (coefs.Rank != 2 || coefs.Dim(0) != b || coefs.Dim(1) != DiffusionLoss.Coefs)
            throw new KdException($"learned_range_vb: coefficients '{coefs.Name}' {coefs.ShapeText} must be [{b}, {DiffusionLoss.Coefs}]");
        var loss = Output(d, [b, per], "learned_range_vb_elements");
        var dv = Output(d, [b, per], "learned_range_vb_dv");
        DiffusionLoss.Vb(d.Accelerator, eps.View, v.View, xt.View, x0.View, coefs.View, loss.View, dv.View, per, v.Length);
        var o = Reshape(Mean(loss, [1]), b);
        RecordReference(d, "learned_range_vb", o, r =>
        {
            var e = DiffusionLoss.Reference.Vb(r[0], r[1], r[2], r[3], r[4], per);
            return Enumerable.Range(0, b).Select(i => e.Skip(i * per).Take(per).Average()).ToArray();
        }, eps, v, xt, x0, coefs);
        if (d.Tape.ShouldRecord(v))
            d.Tape.Record("learned_range_vb", o, g =>
                d.Tape.Accumulate(v, Reshape(Scale(Mul(dv, Reshape(g, b, 1)), 1f / per), v.Shape), owned: true));
        return o;
    }
}
