using KernelDiffusion.Autodiff;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>kd trace: one model on given inputs, writing its output and every block's output under its
/// parameter-path name, and with a gradient seed g the gradients of sum(out * g) with respect to x (grad.x) and
/// every parameter (grad.NAME). This is how a user looks inside the model layer by layer and compares it with the
/// reference implementation.</summary>
public static class ModelTrace
{
    /// <summary>Runs the trace. Inputs: x [N,C,H,W] (float), t [N] (int64 or float), y [N] (int64, class-conditional
    /// UNet only), and with <paramref name="grad"/> g shaped like the output.</summary>
    public static List<SafeTensorWrite> Run(ComputeDevice d, DiffusionTrunk model, SafeTensorsFile input, string source, bool grad)
    {
        long[] Dims(Tensor t) => t.Shape.Select(v => (long)v).ToArray();
        Tensor Load(string name)
        {
            if (!input.Contains(name)) throw new KdException($"{source}: tensor '{name}' is missing");
            var info = input.Info(name);
            if (info.Shape.Length is < 1 or > 4 || info.Shape.Any(v => v < 1 || v > int.MaxValue))
                throw new KdException($"{source}: tensor '{name}' has shape [{string.Join(",", info.Shape)}], which is not a tensor shape here");
            var shape = info.Shape.Select(v => (int)v).ToArray();
            return d.FromArray(input.ReadFloat32(name), shape, name);
        }

        var owned = new List<Tensor>();
        try
        {
            var x = Load("x");
            owned.Add(x);
            var t = Load("t");
            owned.Add(t);
            Tensor? y = null;
            if (input.Contains("y"))
            {
                if (model.Config.IsClassifier || model.Config.NumClasses == 0)
                    throw new KdException($"{source}: tensor 'y' (labels) was given but the model is not class-conditional");
                var labels = input.ReadInt64("y");
                if (labels.Any(l => l < 0 || l >= model.Config.NumClasses))
                    throw new KdException($"{source}: tensor 'y' holds label {labels.First(l => l < 0 || l >= model.Config.NumClasses)}, outside num_classes {model.Config.NumClasses}");
                y = d.Labels(labels.Select(l => (int)l).ToArray(), model.Config.NumClasses, "y");
                owned.Add(y);
            }
            x.RequiresGrad = grad;
            var state = new ForwardState { Trace = [] };
            Tensor output;
            using (grad ? null : d.Tape.NoGrad())
                output = model is UNet u ? u.Forward(x, t, y, state) : ((Classifier)model).Forward(x, t, state);
            var result = new List<SafeTensorWrite> { new("out", Dims(output), output.ToArray()) };
            foreach (var (name, tensor) in state.Trace!)
                if (name != "out") result.Add(new SafeTensorWrite(name, Dims(tensor), tensor.ToArray()));
            if (grad)
            {
                var g = Load("g");
                owned.Add(g);
                if (!g.Shape.SequenceEqual(output.Shape))
                    throw new KdException($"{source}: gradient seed 'g' {g.ShapeText} must have the output's shape {output.ShapeText}");
                foreach (var p in model.Parameters()) p.ZeroGrad();
                d.Tape.Backward(Ops.Sum(Ops.Mul(output, g)));
                result.Add(new SafeTensorWrite("grad.x", Dims(x), x.Grad!.ToArray()));
                foreach (var (name, p) in model.NamedParameters())
                    result.Add(new SafeTensorWrite("grad." + name, Dims(p), p.Grad?.ToArray() ?? new float[p.Length]));
            }
            return result;
        }
        finally
        {
            d.Tape.Reset();
            foreach (var t in owned) t.Dispose();
        }
    }
}
