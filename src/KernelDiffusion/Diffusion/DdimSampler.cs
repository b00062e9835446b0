using KernelDiffusion.Autodiff;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Diffusion;

/// <summary>A plain DDIM sampler (eta = 0) with classifier-free guidance, used for the sample grids written during
/// training: on `steps` evenly spaced timesteps from T-1 down to 0, eps~ = (1 + w) eps(x, c) - w eps(x, null) (the
/// conditional and unconditional passes batched into one forward of 2N), x0 = (x - sqrt(1 - abar) eps~) / sqrt(abar)
/// clipped to [-1, 1], x = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps~. The guided-sampling issue adds the other
/// samplers and the fused step kernels.</summary>
public static class DdimSampler
{
    /// <summary>The timesteps visited, from T-1 down to 0.</summary>
    public static int[] Timesteps(int t, int steps)
    {
        if (steps < 1 || steps > t) throw new KdException($"sampler: {steps} steps do not fit a schedule of {t} timesteps");
        return steps == 1 ? [t - 1] : Enumerable.Range(0, steps).Select(i => (int)Math.Round((t - 1) * (1 - (double)i / (steps - 1)))).Distinct().ToArray();
    }

    /// <summary>Samples one image per label (null: an unconditional model; labels must then be null and count gives
    /// the number). Noise is Philox(seed): image i's noise depends only on (seed, i).</summary>
    public static float[] Sample(ComputeDevice d, UNet model, NoiseSchedule s, int[]? labels, int count, int steps, float guidance, ulong seed)
    {
        var c = model.Config;
        int n = labels?.Length ?? count, ch = c.InChannels, size = c.ImageSize;
        if (labels != null && c.NumClasses == 0) throw new KdException("sampler: labels were given but the model is unconditional");
        if (labels == null && c.NumClasses > 0) throw new KdException($"sampler: the model is class-conditional (num_classes {c.NumClasses}): give labels");
        bool guided = labels != null && guidance != 0;
        using var x = d.Empty([n, ch, size, size], "x");
        int[] shape = [n, ch, size, size];
        using (d.Tape.NoGrad())
        {
            x.CopyFrom(Ops.Normal(d, shape, seed));
            using var y = labels == null ? null : d.Labels(guided ? [.. labels, .. Enumerable.Repeat(c.NumClasses - 1, n)] : labels, c.NumClasses);
            var ts = Timesteps(s.T, steps);
            using var tt = d.Empty([guided ? 2 * n : n], "t");
            for (int i = 0; i < ts.Length; i++)
            {
                int t = ts[i];
                double ab = s.AlphasCumprod[t], abPrev = i + 1 < ts.Length ? s.AlphasCumprod[ts[i + 1]] : 1.0;
                tt.Fill(t);
                var input = guided ? Ops.Concat(x, x, 0) : x;
                var output = model.Forward(input, tt, y);
                var eps = output.Dim(1) == ch ? output : Ops.Slice(output, 1, 0, ch);
                if (guided)
                    eps = Ops.Sub(Ops.Scale(Ops.Slice(eps, 0, 0, n), 1 + guidance), Ops.Scale(Ops.Slice(eps, 0, n, n), guidance));
                var x0 = Ops.Clamp(Ops.Scale(Ops.Sub(x, Ops.Scale(eps, (float)Math.Sqrt(1 - ab))), (float)(1 / Math.Sqrt(ab))), -1, 1);
                x.CopyFrom(Ops.Add(Ops.Scale(x0, (float)Math.Sqrt(abPrev)), Ops.Scale(eps, (float)Math.Sqrt(1 - abPrev))));
                d.Tape.Reset();
            }
        }
        return x.ToArray();
    }
}
