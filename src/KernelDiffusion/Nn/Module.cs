using KernelDiffusion.Autodiff;
using KernelDiffusion.Kernels;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Nn;

/// <summary>How a parameter starts: PyTorch's defaults as guided-diffusion leaves them (uniform +-1/sqrt(fan_in) for
/// conv and linear weights and biases, N(0, 1) for embeddings, ones and zeros for norms, zeros for its
/// zero_module layers).</summary>
public readonly record struct Init(char Kind, float Scale)
{
    public static Init Uniform(float bound) => new('u', bound);
    public static Init Normal(float std) => new('n', std);
    /// <summary>Zeros; U(-bound, bound) when an initialisation randomises zeros (to test output layers).</summary>
    public static Init ZerosOr(float bound) => new('0', bound);
    public static readonly Init Zeros = ZerosOr(0.1f);
    /// <summary>Ones; U(0.5, 1.5) when randomised.</summary>
    public static readonly Init Ones = new('1', 0.5f);
}

/// <summary>What one forward pass needs beyond its inputs: training mode (dropout on), the dropout seed with a
/// running Philox offset so every dropout layer draws its own mask, and an optional trace of block outputs.</summary>
public sealed class ForwardState
{
    public bool Training { get; init; }
    public ulong DropoutSeed { get; init; }
    public ulong DropoutOffset { get; set; }
    /// <summary>When set, models store each block's output under its parameter-path name (kd trace).</summary>
    public Dictionary<string, Tensor>? Trace { get; init; }

    public static ForwardState Eval() => new();

    Tensor? siluSource, silu;

    /// <summary>SiLU of the timestep embedding, which every ResBlock's emb_layers starts with: one launch per forward
    /// (and one in the backward) instead of one per block; the blocks' gradients meet in its gradient.</summary>
    public Tensor SiluOfEmbedding(Tensor embedding)
    {
        if (silu == null || siluSource != embedding || silu.IsReleased) (siluSource, silu) = (embedding, Ops.Silu(embedding));
        return silu;
    }
}

/// <summary>A tree of named parameters with guided-diffusion's state_dict names: a child registered as "in_layers"
/// holding a parameter "weight" gives "in_layers.weight". Parameters are drawn on the device from Philox, seeded by
/// the model seed and the parameter's full name, so one seed always builds the same model.</summary>
public abstract class Module : IDisposable
{
    readonly List<(string Name, Tensor Param)> parameters = [];
    readonly List<(string Name, Module Child)> children = [];
    readonly List<(string Name, Init Init)> inits = [];

    protected Module(ComputeDevice device) => Device = device;

    public ComputeDevice Device { get; }

    protected Tensor Param(string name, int[] shape, Init init)
    {
        var t = Device.Empty(shape, name);
        t.RequiresGrad = true;
        parameters.Add((name, t));
        inits.Add((name, init));
        return t;
    }

    protected T Child<T>(string name, T child) where T : Module
    {
        children.Add((name, child));
        return child;
    }

    public IEnumerable<(string Name, Tensor Param)> NamedParameters(string prefix = "")
    {
        foreach (var (n, p) in parameters) yield return (prefix + n, p);
        foreach (var (n, c) in children)
            foreach (var x in c.NamedParameters(prefix + n + ".")) yield return x;
    }

    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(x => x.Param);

    public long ParameterCount => Parameters().Sum(p => (long)p.Length);

    /// <summary>Draws every parameter from its initialiser and names the tensors by their full path.
    /// <paramref name="randomizeConstants"/> draws the zero and one initialisations at random too, so that checks see
    /// every layer at work (the reference zero-initialises output layers).</summary>
    public void Initialize(ulong seed, string prefix = "", bool randomizeConstants = false)
    {
        for (int i = 0; i < parameters.Count; i++)
        {
            var (name, p) = parameters[i];
            p.Name = prefix + name;
            var init = inits[i].Init;
            ulong s = seed ^ Fnv1a(p.Name);
            switch (init.Kind)
            {
                case '0' when !randomizeConstants: p.Fill(0); break;
                case '1' when !randomizeConstants: p.Fill(1); break;
                case '0': Philox.Draw(Device.Accelerator, p.View, p.Length, s, 0, false, -init.Scale, 2 * init.Scale); break;
                case '1': Philox.Draw(Device.Accelerator, p.View, p.Length, s, 0, false, 1 - init.Scale, 2 * init.Scale); break;
                case 'n': Philox.Draw(Device.Accelerator, p.View, p.Length, s, 0, true, 0, init.Scale); break;
                default: Philox.Draw(Device.Accelerator, p.View, p.Length, s, 0, false, -init.Scale, 2 * init.Scale); break;
            }
        }
        foreach (var (n, c) in children) c.Initialize(seed, prefix + n + ".", randomizeConstants);
    }

    static ulong Fnv1a(string s)
    {
        ulong h = 14695981039346656037;
        foreach (char ch in s) h = (h ^ ch) * 1099511628211;
        return h;
    }

    public virtual void Dispose()
    {
        foreach (var (_, p) in parameters) p.Dispose();
        foreach (var (_, c) in children) c.Dispose();
    }

    /// <summary>Uniform bound of PyTorch's default init for a layer with this fan-in.</summary>
    protected static float Bound(int fanIn) => 1f / MathF.Sqrt(fanIn);
}

/// <summary>A list of modules named 0, 1, 2, ... (nn.Sequential / nn.ModuleList), where only the modules with
/// parameters matter for names.</summary>
public sealed class ModuleList(ComputeDevice device) : Module(device)
{
    readonly List<Module> items = [];

    public T Add<T>(int index, T m) where T : Module
    {
        items.Add(Child(index.ToString(), m));
        return m;
    }

    public IReadOnlyList<Module> Items => items;
}
