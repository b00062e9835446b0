using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Runtime;

/// <summary>A float32, contiguous, row-major (NCHW for images) tensor on a device. Persistent tensors belong to
/// their creator and go back to the pool on Dispose; an op's output is temporary and goes back when the tape is
/// reset. A reshape is a view that shares its source's memory. An arena is one buffer that persistent tensors live
/// in back to back (slices), so that one kernel can cover them all (AdamW, EMA); a slice owns no memory, and the
/// arena's buffer goes back to the pool when its last slice is released. Using a tensor after its memory went back
/// to the pool throws, naming the tensor.</summary>
public sealed class Tensor : IDisposable
{
    MemoryBuffer1D<float, Stride1D.Dense>? buffer;
    bool released;
    readonly int[] shape;
    /// <summary>Whose memory this tensor shares: a reshape's source, or the arena a slice lies in (it changes when
    /// the tensor moves into an arena, so views are resolved at each use, never cached).</summary>
    Tensor? viewOf;
    /// <summary>Where a slice starts in its arena (0 for a reshape).</summary>
    int offset;
    readonly bool isArena;
    /// <summary>An arena's live slices: its buffer goes back to the pool when they reach zero.</summary>
    int slices;
    /// <summary>A parameter's reserved slice of a gradient arena, which its first gradient adopts (see NewGrad).</summary>
    Tensor? gradSlot;

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

    /// <summary>Nothing has reached Grad since ZeroGrad (or there is none yet): a backward may then write the gradient
    /// straight into it instead of adding a temporary (Tape.ClearGrad).</summary>
    internal bool GradIsClear { get; set; } = true;

    /// <summary>PyTorch's grad = None without giving the buffer back: the next backward writes the gradient over what
    /// Grad holds, which is stale until then. For benchmarks, whose every input gets a gradient in every run (a
    /// parameter that got none would keep its old one: use ZeroGrad in training).</summary>
    internal void ForgetGrad() => GradIsClear = true;

    /// <summary>The tensor a reshape view shares its memory with (null for anything else: an arena slice is a
    /// tensor of its own).</summary>
    internal Tensor? ReshapeSource => viewOf is { isArena: false } source ? source : null;

    internal Tensor(ComputeDevice device, int[] shape, string name, bool persistent, bool arena = false)
    {
        Device = device;
        Name = name;
        this.shape = CheckShape(shape, name);
        Length = CountOf(this.shape, name);
        IsPersistent = persistent;
        isArena = arena;
        buffer = device.Pool.Rent(Length);
    }

    /// <summary>A reshape view (temporary) or an arena slice (persistent) of <paramref name="of"/>.</summary>
    Tensor(Tensor of, int offset, int[] shape, string name, bool persistent)
    {
        Device = of.Device;
        Name = name;
        this.shape = shape;
        Length = CountOf(shape, name);
        IsPersistent = persistent;
        Attach(of, offset);
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
            return viewOf != null ? viewOf.View.SubView(offset, Length) : buffer!.View;
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
        return new Tensor(this, 0, s, name, persistent: false);
    }

    /// <summary>A new arena of <paramref name="length"/> elements; place tensors in it with Slice and MoveInto.</summary>
    internal static Tensor Arena(ComputeDevice device, long length, string name)
    {
        if (length > int.MaxValue) throw new KdException($"arena '{name}': {length} elements exceed 2^31 - 1");
        return new Tensor(device, [(int)length], name, persistent: true, arena: true);
    }

    /// <summary>A new persistent tensor over elements [offset, offset + its length) of this arena. Disposing it
    /// returns no memory by itself: the arena's buffer goes back with its last slice.</summary>
    internal Tensor Slice(int offset, int[] shape, string name)
    {
        if (!isArena) throw new InvalidOperationException($"tensor '{Name}' is not an arena");
        var s = CheckShape(shape, name);
        if (offset < 0 || offset + (long)CountOf(s, name) > Length)
            throw new InvalidOperationException($"slice '{name}' [{string.Join(",", shape)}] at {offset} does not fit arena '{Name}' {ShapeText}");
        return new Tensor(this, offset, s, name, persistent: true);
    }

    /// <summary>Moves this persistent tensor to elements [offset, offset + Length) of <paramref name="arena"/>:
    /// copies its values there and gives up its own buffer (or leaves its former arena). It stays the same object
    /// with the same name, so whoever holds it (layers, checkpoints) sees the move; a View taken earlier is stale.</summary>
    internal void MoveInto(Tensor arena, int offset)
    {
        if (!arena.isArena) throw new InvalidOperationException($"tensor '{arena.Name}' is not an arena");
        if (!IsPersistent || isArena)
            throw new InvalidOperationException($"tensor '{Name}' cannot move into arena '{arena.Name}': only a persistent tensor moves");
        if (offset < 0 || offset + (long)Length > arena.Length)
            throw new InvalidOperationException($"tensor '{Name}' {ShapeText} at {offset} does not fit arena '{arena.Name}' {arena.ShapeText}");
        arena.View.SubView(offset, Length).CopyFrom(Device.Accelerator.DefaultStream, View);
        Detach();
        Attach(arena, offset);
    }

    void Attach(Tensor of, int at)
    {
        viewOf = of;
        offset = at;
        if (of.isArena) of.slices++;
    }

    /// <summary>Gives up this tensor's memory: its own buffer goes back to the pool, a slice leaves its arena.</summary>
    void Detach()
    {
        if (buffer != null) Device.Pool.Return(buffer);
        buffer = null;
        if (viewOf is { isArena: true } arena && --arena.slices == 0) arena.Release();
        viewOf = null;
    }

    /// <summary>The memory of <paramref name="tensors"/> when they lie back to back, in this order, in one arena,
    /// so that one launch covers them all; null otherwise (or when one was released).</summary>
    internal static ArrayView<float>? Span(IReadOnlyList<Tensor> tensors)
    {
        if (tensors.Count == 0 || tensors[0].viewOf is not { isArena: true } arena) return null;
        long start = tensors[0].offset, end = start;
        foreach (var t in tensors)
        {
            if (t.released || t.viewOf != arena || t.offset != end) return null;
            end += t.Length;
        }
        return arena.View.SubView(start, end - start);
    }

    /// <summary>Reserves elements [offset, offset + Length) of <paramref name="arena"/> for this parameter's
    /// gradient: the gradient it has moves there, or the first one Backward makes is written there.</summary>
    internal void PlaceGradIn(Tensor arena, int offset)
    {
        if (Grad != null)
        {
            Grad.MoveInto(arena, offset);
            return;
        }
        gradSlot?.Release();
        gradSlot = arena.Slice(offset, shape, Name + ".grad");
    }

    /// <summary>A persistent tensor's first gradient: its reserved arena slice, else a new buffer.</summary>
    internal Tensor NewGrad()
    {
        var g = gradSlot ?? Device.Empty(shape, Name + ".grad");
        gradSlot = null;
        return g;
    }

    /// <summary>Copies to a new host array (synchronises).</summary>
    public float[] ToArray()
    {
        var r = new float[Length];
        Device.Wait(() =>
        {
            View.CopyToCPU(Device.Accelerator.DefaultStream, r);
            Device.Accelerator.DefaultStream.Synchronize();
        });
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
        Kernels.KernelCache.Count("copy.device");
    }

    public void Fill(float value) => Kernels.Elementwise.Fill(Device.Accelerator, View, value, Length);

    /// <summary>Fills the gradient with zeros (keeps its buffer: no allocation in the next step).</summary>
    public void ZeroGrad()
    {
        Grad?.Fill(0);
        GradIsClear = true;
    }

    /// <summary>A persistent copy of a temporary, to outlive the tape (the caller disposes it); a persistent tensor returns itself.</summary>
    public Tensor Keep()
    {
        if (IsPersistent) return this;
        var kept = new Tensor(Device, shape, Name, persistent: true);
        kept.CopyFrom(this);
        return kept;
    }

    /// <summary>Returns the buffer (a reshape owns none; a slice leaves its arena) and marks the tensor unusable. A
    /// temporary's gradient is a temporary too, which the tape releases itself.</summary>
    internal void Release()
    {
        if (released) return;
        released = true;
        Detach();
        Grad = null;
        gradSlot?.Release();
        gradSlot = null;
    }

    public void Dispose()
    {
        if (!IsPersistent) throw new KdException($"tensor '{Name}' is an op's output: the tape owns it (Keep() a copy to own one)");
        Grad?.Release();
        Release();
    }

    public override string ToString() => $"{Name}{ShapeText}";
}
