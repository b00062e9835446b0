using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Autodiff;

public static partial class Ops
{
    /// <summary>guided-diffusion's sinusoidal timestep embedding [N, dim] of timesteps t [N] (fractional allowed).</summary>
    public static Tensor TimestepEmbedding(Tensor t, int dim)
    {
        var d = Inputs("timestep_embedding", t);
        if (t.Rank != 1) throw new KdException($"timestep_embedding: timesteps '{t.Name}' {t.ShapeText} must be [N]");
        if (dim < 2) throw new KdException($"timestep_embedding: dimension {dim} is below 2");
        var e = Output(d, [t.Dim(0), dim], "timestep_embedding");
        Kernels.Embedding.Timestep(d.Accelerator, t.View, e.View, t.Dim(0), dim);
        RecordReference(d, "timestep_embedding", e, v => Kernels.Embedding.Reference.Timestep(v[0], dim), t);
        return e;
    }

    /// <summary>Rows of table [rows, dim] picked by labels [N] (from Labels / TemporaryLabels): [N, dim].</summary>
    public static Tensor Embedding(Tensor table, Tensor labels)
    {
        var d = Inputs("embedding", table, labels);
        if (table.Rank != 2 || labels.Rank != 1)
            throw new KdException($"embedding: table '{table.Name}' {table.ShapeText} must be [rows, dim] and labels '{labels.Name}' {labels.ShapeText} [N]");
        int n = labels.Dim(0), dim = table.Dim(1), rows = table.Dim(0);
        var y = Output(d, [n, dim], "embedding");
        Kernels.Embedding.Lookup(d.Accelerator, table.View, labels.View, y.View, n, dim, rows);
        RecordReference(d, "embedding", y, v => Kernels.Embedding.Reference.Lookup(v[0], v[1].Select(l => (int)l).ToArray(), dim), table, labels);
        if (d.Tape.ShouldRecord(table))
            d.Tape.Record("embedding", y, g =>
            {
                var dt = GradOutput(d, table, "embedding_grad");
                Kernels.Embedding.LookupGrad(d.Accelerator, labels.View, g.View, dt.View, n, dim, rows);
                dt.Commit();
            });
        return y;
    }

    /// <summary>Inverted dropout with probability p; the mask is Philox(seed, offset, element), recomputed in the
    /// backward. p = 0 returns x itself.</summary>
    public static Tensor Dropout(Tensor x, float p, ulong seed, ulong offset = 0)
    {
        var d = Inputs("dropout", x);
        if (p is < 0 or >= 1) throw new KdException($"dropout: probability {p} is outside [0, 1)");
        if (p == 0) return x;
        var y = Output(d, x.Shape, "dropout");
        Kernels.Dropout.Apply(d.Accelerator, x.View, y.View, x.Length, p, seed, offset);
        RecordReference(d, "dropout", y, v => Kernels.Dropout.Reference.Apply(v[0], (double)p, seed, offset), x);
        if (d.Tape.ShouldRecord(x))
            d.Tape.Record("dropout", y, g =>
            {
                var dx = GradOutput(d, x, "dropout_grad");
                Kernels.Dropout.Apply(d.Accelerator, g.View, dx.View, x.Length, p, seed, offset);
                dx.Commit();
            });
        return y;
    }
}
