using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>Multi-head self-attention of qkv [N, 3C, T] into [N, C, T], with guided-diffusion's head order
    /// (newOrder: QKVAttention; else QKVAttentionLegacy) and scaling (q and k each times ch^-1/4).</summary>
    public static Tensor Attention(Tensor qkv, int heads, bool newOrder)
    {
        var d = Inputs("attention", qkv);
        if (qkv.Rank != 3 || qkv.Dim(1) % 3 != 0)
            throw new KdException($"attention: qkv '{qkv.Name}' {qkv.ShapeText} must be [N, 3C, T]");
        int c = qkv.Dim(1) / 3;
        if (heads < 1 || c % heads != 0)
            throw new KdException($"attention: {heads} heads do not divide the {c} channels of '{qkv.Name}' {qkv.ShapeText}");
        var s = new AttentionShape { N = qkv.Dim(0), C = c, T = qkv.Dim(2), Heads = heads, NewOrder = newOrder ? 1 : 0 };
        var a = Output(d, [s.N, c, s.T], "attention");
        var fallback = Kernels.Attention.Choose(d.Accelerator, s);
        bool lse = Kernels.Attention.SavesLogSumExp(d.Versions.Attention ?? fallback);
        // v1 and v3 keep the weights P [N*H, T, T] for their backward, in the same layout; v2 and v4 keep the
        // log-sum-exp [N*H, T]. attention=auto chooses among the versions that keep the same thing, for the forward and
        // the backward apart. Allocated without a profiler mark (not Output), so the per-op profile charges the forward
        // to "attention".
        var saved = d.Temporary(lse ? [s.Batch, s.T] : [s.Batch, s.T, s.T], lse ? "attention_lse" : "attention_weights");
        IEnumerable<AttentionVersion> SameSaved() => Enum.GetValues<AttentionVersion>().Where(v => Kernels.Attention.SavesLogSumExp(v) == lse && Kernels.Attention.Runs(s, v));
        string Key(string pass) => $"{pass} N{s.N} C{s.C} T{s.T} heads {s.Heads}{(newOrder ? "" : " legacy order")}";
        void Forward(AttentionVersion v)
        {
            if (v == AttentionVersion.V2Streaming) Kernels.Attention.StreamForward(d.Accelerator, s, qkv.View, a.View, saved.View);
            else if (v == AttentionVersion.V4Tiled) Kernels.Attention.TiledForward(d.Accelerator, s, qkv.View, a.View, saved.View);
            else if (v == AttentionVersion.V3SharedHead) Kernels.Attention.SharedForward(d.Accelerator, s, qkv.View, saved.View, a.View);
            else Kernels.Attention.Forward(d.Accelerator, s, qkv.View, saved.View, a.View, GemmAsMatMul(d));
        }
        var version = d.RunVersion("attention", d.Versions.Attention, fallback, () => Key("forward"), SameSaved, Forward, a.View, saved.View);
        RecordReference(d, "attention", a, v => Kernels.Attention.Reference.Forward(v[0], s), qkv);
        if (d.Tape.ShouldRecord(qkv))
            d.Tape.Record("attention", a, g =>
            {
                var dqkv = GradOutput(d, qkv, "attention_grad");
                Tensor? scratch = null;
                void Backward(AttentionVersion v)
                {
                    if (v == AttentionVersion.V3SharedHead)
                    {
                        Kernels.Attention.SharedBackward(d.Accelerator, s, qkv.View, saved.View, g.View, dqkv.View);
                        return;
                    }
                    scratch ??= d.Temporary(saved.Shape, "attention_scratch");   // charged to "attention_grad" in the profile
                    if (v == AttentionVersion.V4Tiled) Kernels.Attention.TiledBackward(d.Accelerator, s, qkv.View, a.View, saved.View, g.View, scratch.View, dqkv.View);
                    else if (v == AttentionVersion.V2Streaming) Kernels.Attention.StreamBackward(d.Accelerator, s, qkv.View, a.View, saved.View, g.View, scratch.View, dqkv.View);
                    else Kernels.Attention.Backward(d.Accelerator, s, qkv.View, saved.View, g.View, scratch.View, dqkv.View, GemmAsMatMul(d));
                }
                d.RunVersion("attention", d.Versions.Attention, version, () => Key("backward"), SameSaved, Backward, dqkv.View);
                dqkv.Commit();
            });
        return a;
    }
}
