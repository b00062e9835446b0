using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Runtime;

/// <summary>Caching allocator: buffers are kept by exact length and handed out again, so a steady-state training
/// or sampling step allocates no device memory (ILGPU's Allocate1D and Dispose call the driver and synchronise).
/// <see cref="Allocations"/> counts real device allocations; tests use it to prove the steady state.</summary>
public sealed class BufferPool(Accelerator accelerator) : IDisposable
{
    readonly Dictionary<int, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> free = [];
    /// <summary>The same buffers as a set: a buffer returned twice would later go to two tensors at once.</summary>
    readonly HashSet<MemoryBuffer1D<float, Stride1D.Dense>> freeSet = new(ReferenceEqualityComparer.Instance);

    /// <summary>Device allocations made so far.</summary>
    public long Allocations { get; private set; }
    public long BytesAllocated { get; private set; }
    public long Rents { get; private set; }
    public int InUse { get; private set; }

    /// <summary>When set, every rented buffer is filled with NaN first, so an element a kernel forgets to write shows
    /// up in checks.</summary>
    public bool Poison { get; set; }

    public MemoryBuffer1D<float, Stride1D.Dense> Rent(int length)
    {
        if (length <= 0) throw new KdException($"buffer pool: cannot allocate {length} elements");
        Rents++;
        InUse++;
        MemoryBuffer1D<float, Stride1D.Dense> buf;
        if (free.TryGetValue(length, out var stack) && stack.Count > 0)
        {
            buf = stack.Pop();
            freeSet.Remove(buf);
        }
        else
        {
            buf = accelerator.Allocate1D<float>(length);
            Allocations++;
            BytesAllocated += 4L * length;
        }
        if (Poison) Kernels.Elementwise.Fill(accelerator, buf.View, float.NaN, length);
        return buf;
    }

    public void Return(MemoryBuffer1D<float, Stride1D.Dense> buf)
    {
        if (!freeSet.Add(buf)) throw new InvalidOperationException($"buffer pool: a buffer of {buf.Length} elements was returned twice");
        InUse--;
        int length = (int)buf.Length;
        if (!free.TryGetValue(length, out var stack)) free[length] = stack = new();
        stack.Push(buf);
    }

    /// <summary>Frees the cached (not rented) buffers.</summary>
    public void Trim()
    {
        foreach (var s in free.Values)
            while (s.Count > 0) s.Pop().Dispose();
        freeSet.Clear();
    }

    public void Dispose() => Trim();
}
