using ILGPU;
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
        // v1 and v3 keep the weights P [N*H, T, T] for their backward, in the same layout; v2, v4 and v6-v12 keep the
        // log-sum-exp [N*H, T]. Each is allocated when a version that keeps it runs, without a profiler mark (not
        // Output), so the per-op profile charges the forward to "attention".
        Tensor? weights = null, logSumExp = null, scratchWeights = null, scratchRows = null, probe = null;
        Tensor Saved(AttentionVersion v) => Kernels.Attention.SavesLogSumExp(v)
            ? logSumExp ??= d.Temporary([s.Batch, s.T], "attention_lse")
            : weights ??= d.Temporary([s.Batch, s.T, s.T], "attention_weights");
        Tensor Scratch(AttentionVersion v) => Kernels.Attention.SavesLogSumExp(v)
            ? scratchRows ??= d.Temporary([s.Batch, s.T], "attention_scratch")
            : scratchWeights ??= d.Temporary([s.Batch, s.T, s.T], "attention_scratch");
        IEnumerable<AttentionVersion> Candidates() => Enum.GetValues<AttentionVersion>().Where(v => Kernels.Attention.Runs(d.Accelerator, s, v) && Kernels.Attention.Tunable(d.Accelerator, s, v));
        string Key(string pass) => $"{pass} N{s.N} C{s.C} T{s.T} heads {s.Heads}{(newOrder ? "" : " legacy order")}";
        void Forward(AttentionVersion v)
        {
            var saved = Saved(v);
            if (v == AttentionVersion.V2Streaming) Kernels.Attention.StreamForward(d.Accelerator, s, qkv.View, a.View, saved.View);
            else if (v is AttentionVersion.V4Tiled or AttentionVersion.V6TiledScores or AttentionVersion.V7TiledScoresDk)
                Kernels.Attention.TiledForward(d.Accelerator, s, qkv.View, a.View, saved.View);
            else if (Kernels.Attention.UsesWarpRows(v))
                Kernels.Attention.WarpRowsForward(d.Accelerator, s, qkv.View, a.View, saved.View, version: v);
            else if (v == AttentionVersion.V3SharedHead) Kernels.Attention.SharedForward(d.Accelerator, s, qkv.View, saved.View, a.View);
            else Kernels.Attention.Forward(d.Accelerator, s, qkv.View, saved.View, a.View, GemmAsMatMul(d));
        }
        // dqkv from da with version v's backward, from what v's forward kept.
        void Backward(AttentionVersion v, ArrayView<float> da, ArrayView<float> dqkv)
        {
            var saved = Saved(v);
            if (v == AttentionVersion.V3SharedHead) Kernels.Attention.SharedBackward(d.Accelerator, s, qkv.View, saved.View, da, dqkv);
            else if (v == AttentionVersion.V4Tiled) Kernels.Attention.TiledBackward(d.Accelerator, s, qkv.View, a.View, saved.View, da, Scratch(v).View, dqkv);
            else if (v is AttentionVersion.V6TiledScores or AttentionVersion.V7TiledScoresDk || Kernels.Attention.UsesWarpRows(v))   // v9: v8's forward, v6's backward
            {
                // dS [N*H, T, T] lives only until dQ's GEMM (v10, v12: its kernel) has read it: back to the pool at once (the stream orders its reuse).
                var scores = d.Temporary([s.Batch, s.T, s.T], "attention_scores");
                if (v != AttentionVersion.V9WarpRowsForward && Kernels.Attention.UsesWarpRows(v))
                    Kernels.Attention.WarpRowsBackward(d.Accelerator, s, qkv.View, a.View, saved.View, da, Scratch(v).View, scores.View, dqkv,
                        GemmAsMatMul(d), version: v);
                else
                    Kernels.Attention.TiledScoresBackward(d.Accelerator, s, qkv.View, a.View, saved.View, da, Scratch(v).View, scores.View, dqkv,
                        gemm: GemmAsMatMul(d), keyGradByGemm: v == AttentionVersion.V7TiledScoresDk);
                scores.Release();
            }
            else if (v == AttentionVersion.V2Streaming) Kernels.Attention.StreamBackward(d.Accelerator, s, qkv.View, a.View, saved.View, da, Scratch(v).View, dqkv);
            else Kernels.Attention.Backward(d.Accelerator, s, qkv.View, saved.View, da, Scratch(v).View, dqkv, GemmAsMatMul(d));
        }
        // attention=auto chooses among every version. A forward whose backward will run (training) is tried with that
        // backward, on da = a into a scratch dqkv, so the choice counts both passes and the backward follows it; once
        // chosen, the forward runs alone. A forward alone (sampling) is tried alone.
        bool training = d.Tape.ShouldRecord(qkv), joint = training && d.Versions.Attention == null && d.Versions.Tunes("attention");
        Tensor Probe() => probe ??= d.Temporary(qkv.Shape, "attention_tuning_grad");
        AttentionVersion version;
        if (joint && d.Tuner.Known<AttentionVersion>("attention", Key("forward+backward")) is { } known) Forward(version = known);
        else if (joint)
            version = d.RunVersion("attention", null, fallback, () => Key("forward+backward"), Candidates,
                v => { Forward(v); Backward(v, a.View, Probe().View); }, a.View, Probe().View);
        else version = d.RunVersion("attention", d.Versions.Attention, fallback, () => Key("forward"), Candidates, Forward, a.View);
        RecordReference(d, "attention", a, v => Kernels.Attention.Reference.Forward(v[0], s), qkv);
        if (training)
            d.Tape.Record("attention", a, g =>
            {
                var dqkv = GradOutput(d, qkv, "attention_grad");
                Backward(version, g.View, dqkv.View);   // the scratch it takes is charged to "attention_grad" in the profile
                dqkv.Commit();
            });
        return a;
    }
}
