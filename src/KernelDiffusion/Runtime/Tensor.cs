using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Runtime;

/// <summary>A float32, contiguous, row-major (NCHW for images) tensor on a device. Persistent tensors belong to
/// their creator and go back to the pool on Dispose; an op's output is temporary and goes back when the tape is
/// reset. A reshape is a view that shares its base's buffer. Using a tensor after its buffer went back to the
/// pool throws, naming the tensor.</summary>
public sealed class Tensor : IDisposable
{
    MemoryBuffer1D<float, Stride1D.Dense>? buffer;
    bool released;
    readonly Tensor? viewOf;
    readonly int[] shape;

    public ComputeDevice Device { get; }
    public string Name { get; set; }
    public int Length { get; }
    public bool IsPersistent { get; }

    /// <summary>Gradients flow to this tensor in Backward(): set it on parameters and on inputs such as x_t when
    /// d/dx is wanted.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>The accumulated gradient, same shape; persistent for persistent tensors (kept until ZeroGrad fills it
    /// with zeros), temporary otherwise.</summary>
    public Tensor? Grad { get; internal set; }

    internal Tensor(ComputeDevice device, int[] shape, string name, bool persistent)
    {
        Device = device;
        Name = name;
        this.shape = CheckShape(shape, name);
        Length = CountOf(this.shape, name);
        IsPersistent = persistent;
        buffer = device.Pool.Rent(Length);
    }

    Tensor(Tensor of, int[] shape, string name)
    {
        Device = of.Device;
        Name = name;
        viewOf = of.viewOf ?? of;
        this.shape = shape;
        Length = of.Length;
        IsPersistent = false;
    }

    public int[] Shape => (int[])shape.Clone();
    public int Rank => shape.Length;
    public int Dim(int i) => shape[i < 0 ? shape.Length + i : i];
    public string ShapeText => "[" + string.Join(",", shape) + "]";
    public bool IsReleased => released || (viewOf?.IsReleased ?? false);

    /// <summary>The device memory. Throws once the buffer went back to the pool.</summary>
    public ArrayView<float> View
    {
        get
        {
            if (IsReleased)
                throw new KdException($"tensor '{Name}' {ShapeText} was used after its buffer went back to the pool " +
                                      (IsPersistent ? "(it was disposed)" : "(the tape was reset; Keep() a copy of what must outlive a step)"));
            return viewOf != null ? viewOf.View : buffer!.View;
        }
    }

    static int[] CheckShape(int[] shape, string name)
    {
        if (shape.Length is < 1 or > 4)
            throw new KdException($"tensor '{name}': rank {shape.Length} is not supported (1 to 4 dimensions)");
        if (shape.Any(d => d <= 0))
            throw new KdException($"tensor '{name}': shape [{string.Join(",", shape)}] has a dimension that is not positive");
        return (int[])shape.Clone();
    }

    static int CountOf(int[] shape, string name)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        if (n > int.MaxValue) throw new KdException($"tensor '{name}': {n} elements exceed 2^31 - 1");
        return (int)n;
    }

    /// <summary>A view with another shape over the same buffer; temporary (the tape forgets it on reset).</summary>
    internal Tensor ViewAs(int[] newShape, string name)
    {
        var s = CheckShape(newShape, name);
        if (CountOf(s, name) != Length)
            throw new KdException($"reshape: tensor '{Name}' {ShapeText} ({Length} elements) cannot become [{string.Join(",", newShape)}]");
        return new Tensor(this, s, name);
    }

    /// <summary>Copies to a new host array (synchronises).</summary>
    public float[] ToArray()
    {
        var r = new float[Length];
        View.CopyToCPU(Device.Accelerator.DefaultStream, r);
        Device.Accelerator.DefaultStream.Synchronize();
        return r;
    }

    public void CopyFrom(float[] data)
    {
        if (data.Length != Length)
            throw new KdException($"copy: {data.Length} host values do not fill tensor '{Name}' {ShapeText} ({Length} elements)");
        View.CopyFromCPU(Device.Accelerator.DefaultStream, data);
    }

    /// <summary>Device-to-device copy of a tensor with the same number of elements.</summary>
    public void CopyFrom(Tensor source)
    {
        if (source.Length != Length)
            throw new KdException($"copy: tensor '{source.Name}' {source.ShapeText} does not fit tensor '{Name}' {ShapeText}");
        View.CopyFrom(Device.Accelerator.DefaultStream, source.View);
    }

    public void Fill(float value) => Kernels.Elementwise.Fill(Device.Accelerator, View, value, Length);

    /// <summary>Fills the gradient with zeros (keeps its buffer: no allocation in the next step).</summary>
    public void ZeroGrad() => Grad?.Fill(0);

    /// <summary>A persistent copy of a temporary, to outlive the tape (the caller disposes it); a persistent tensor returns itself.</summary>
    public Tensor Keep()
    {
        if (IsPersistent) return this;
        var kept = new Tensor(Device, shape, Name, persistent: true);
        kept.CopyFrom(this);
        return kept;
    }

    /// <summary>Returns the buffer (views own none) and marks the tensor unusable. A temporary's gradient is a
    /// temporary too, which the tape releases itself.</summary>
    internal void Release()
    {
        if (released) return;
        released = true;
        if (buffer != null) Device.Pool.Return(buffer);
        buffer = null;
        Grad = null;
    }

    public void Dispose()
    {
        if (!IsPersistent) throw new KdException($"tensor '{Name}' is an op's output: the tape owns it (Keep() a copy to own one)");
        Grad?.Release();
        Release();
    }

    public override string ToString() => $"{Name}{ShapeText}";
}
