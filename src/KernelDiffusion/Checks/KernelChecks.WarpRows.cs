using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checks;

public static partial class KernelChecks
{
    /// <summary>Attention v8 (warp rows): its forward against the float64 forward and its backward (key side and dQ's
    /// GEMM; v10: dQ by its own kernel; v11 and v12: v8 and v10 on the lean kernels; v13: its 3xTF32 forward, v11's
    /// backward; v14: v13's forward, its key side on the tensor cores too; v15: v14 with cp.async tiles; the mma emulated
    /// off CUDA) against the analytic float64 gradient (Attention.Reference.Backward, which a test holds to central differences), outputs poisoned with NaN. Ragged heads (6, 24 and 40 channels, padded to 32 or 64), partial query
    /// blocks and key tiles (13, 45 and 70 positions), both head orders, and the reference models' widths (32, 64).
    /// v8 runs only in 128-thread groups of 32-lane warps: where the device has none (kd's CPU device), on a CPU device
    /// made so, whose shared memory is not limited to 48 KB (CUDA raises v8's kernels past it: SharedMemoryLimit).</summary>
    static void AddWarpRows(List<Case> list)
    {
        AddWarpRowsThroughOps(list);
        (int, int, int, int)[] shapes = [(6, 13, 3, 1), (24, 70, 2, 0), (32, 70, 2, 1), (40, 45, 2, 0), (64, 70, 1, 1)];
        // v15 copies runs of 4 positions as 16-byte copies where T is a multiple of 4, else 4-byte copies: two shapes of each.
        (int, int, int, int)[] v15Shapes = [(6, 13, 3, 1), (40, 45, 2, 0), (24, 68, 2, 0), (64, 100, 1, 1)];
        foreach (var version in new[] { 8, 10, 11, 12, 13, 14, 15 })
        foreach (var (ch, t, heads, newOrder) in version == 15 ? v15Shapes : shapes)
        {
            var s = new AttentionShape { N = 2, C = heads * ch, T = t, Heads = heads, NewOrder = newOrder };
            list.Add(new Case($"attention.v{version}{CpAsyncTag(version)}.ch{ch}.t{t}{(newOrder == 0 ? ".legacy_order" : "")}.forward_backward",
                $"[2,{3 * s.C},{t}] {heads} head{(heads == 1 ? "" : "s")} of {ch} channels", (d, r) =>
                {
                    var (x, w) = (Randn(r, s.N * 3 * s.C * t), Randn(r, s.N * s.C * t));
                    float[] got = On32LaneGroups(d, Attention.WarpRowsThreads, "", acc =>
                        {
                            int? limit = Launch.IsCpu(acc) ? 128 * 1024 : null;
                            using var qkv = acc.Allocate1D(x.Select(v => (float)v).ToArray());
                            using var da = acc.Allocate1D(w.Select(v => (float)v).ToArray());
                            using var a = Poisoned(acc, s.N * s.C * t);
                            using var lse = Poisoned(acc, s.Batch * t);
                            using var delta = Poisoned(acc, s.Batch * t);
                            using var scores = Poisoned(acc, s.Batch * t * t);
                            using var dqkv = Poisoned(acc, s.N * 3 * s.C * t);
                            var v = (AttentionVersion)version;
                            Attention.WarpRowsForward(acc, s, qkv.View, a.View, lse.View, limit, v);
                            Attention.WarpRowsBackward(acc, s, qkv.View, a.View, lse.View, da.View, delta.View, scores.View, dqkv.View, limitBytes: limit,
                                version: v);
                            return [.. a.GetAsArray1D(), .. dqkv.GetAsArray1D()];
                        }, out string where);
                    int n = s.N * s.C * t;
                    double forward = RelError(got[..n], Attention.Reference.Forward(x, s));
                    double backward = RelError(got[n..], Attention.Reference.Backward(x, w, s));
                    return (Math.Max(forward, backward), Bwd, $"forward {forward:G2}, gradient {backward:G2} against the analytic one{where}");
                }));
        }
    }

    /// <summary>v8 through the ops and the tape (Ops.Attention with attention=v8 forced: its saved log-sum-exp, scratch and
    /// dS buffers): the forward against float64 and the gradient against central differences of the float64 forward, at
    /// a ragged shape in both head orders and at one head of 5 positions (the classifier's attention pool), v9 (v8's
    /// forward, v6's backward) at the ragged shape, v10 (v8 with its dQ kernel) at the ragged shape in both orders, and
    /// v11-v15 (the lean kernels; v13's forward and v14's and v15's on the tensor cores) at the ragged shape, one order each; on the
    /// device where their warps run, else on a
    /// CPU device of 32-lane warps.</summary>
    static void AddWarpRowsThroughOps(List<Case> list)
    {
        foreach (var (n, c, t, heads, newOrder, tag, version) in new[] { (2, 18, 13, 3, true, "ragged", AttentionVersion.V8WarpRows),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V8WarpRows), (3, 4, 5, 1, true, "one_head", AttentionVersion.V8WarpRows),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V9WarpRowsForward),
                     (2, 18, 13, 3, true, "ragged", AttentionVersion.V10WarpRowsQueryGrad),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V10WarpRowsQueryGrad),
                     (2, 18, 13, 3, true, "ragged", AttentionVersion.V11WarpRowsLean),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V12WarpRowsLeanQueryGrad),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V13Tf32x3Forward),
                     (2, 18, 13, 3, true, "ragged", AttentionVersion.V14Tf32x3),
                     (2, 18, 13, 3, false, "ragged", AttentionVersion.V15PipelinedTf32x3) })
        {
            var s = new AttentionShape { N = n, C = c, T = t, Heads = heads, NewOrder = newOrder ? 1 : 0 };
            string name = $"attention.{(newOrder ? "new_order" : "legacy_order")}.{tag}.v{(int)version}{CpAsyncTag((int)version)}";
            Func<Tensor[], Tensor> op = x => Ops.Attention(x[0], heads, newOrder);
            Func<double[][], double[]> reference = v => Attention.Reference.Forward(v[0], s);
            int[][] shape = [[n, 3 * c, t]];
            foreach (var inner in new[] { Forward(name, shape, op, reference), Backward(name, shape, op, reference) })
                list.Add(inner with { Run = (d, r) => OnWarpRowsDevice(d, cd => cd.Versions.With(v => v.Attention = version, () => inner.Run(cd, r))) });
        }
    }

    /// <summary>".cp_async" in the names of v15's cases (its tiles copied by cp.async): the GPU scripts check them in a
    /// process of their own on their first GPU run (--filter .cp_async, --exclude .cp_async), where a misaligned copy
    /// would fault the context and stop every case after it.</summary>
    static string CpAsyncTag(int version) => version == (int)AttentionVersion.V15PipelinedTf32x3 ? ".cp_async" : "";

    static (double Err, double Tol, string Note) OnWarpRowsDevice(ComputeDevice d, Func<ComputeDevice, (double Err, double Tol, string Note)> run)
    {
        if (Attention.WarpRowsRun(d.Accelerator)) return run(d);
        var shaped = ShapedDevice(32, Attention.WarpRowsThreads / 32);
        (double, double, string) result;
        lock (shaped.Accelerator) result = run(shaped);
        var (err, tol, note) = result;
        return (err, tol, (note + Elsewhere32(d)).TrimStart(';', ' '));
    }
}
