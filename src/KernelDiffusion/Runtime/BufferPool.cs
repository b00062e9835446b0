using ILGPU;
using ILGPU.Runtime;

namespace KernelDiffusion.Runtime;

/// <summary>Caching allocator: buffers are kept by exact length and handed out again, so a steady-state training
/// or sampling step allocates no device memory (ILGPU's Allocate1D and Dispose call the driver and synchronise).
/// <see cref="Allocations"/> counts real device allocations; tests use it to prove the steady state. When the device
/// refuses an allocation, the cached buffers are freed and it is tried once more, as PyTorch's caching allocator does:
/// buffers cached at lengths the next model or step never asks for again would otherwise hold the memory it needs.</summary>
/// <param name="allocate">The device allocation (default: the accelerator's Allocate1D; tests pass one that runs out of
/// memory).</param>
public sealed class BufferPool(Accelerator accelerator, Func<int, MemoryBuffer1D<float, Stride1D.Dense>>? allocate = null) : IDisposable
{
    readonly Func<int, MemoryBuffer1D<float, Stride1D.Dense>> Allocate = allocate ?? (length => accelerator.Allocate1D<float>(length));

    readonly Dictionary<int, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> free = [];
    /// <summary>The same buffers as a set: a buffer returned twice would later go to two tensors at once.</summary>
    readonly HashSet<MemoryBuffer1D<float, Stride1D.Dense>> freeSet = new(ReferenceEqualityComparer.Instance);

    /// <summary>Device allocations made so far.</summary>
    public long Allocations { get; private set; }
    public long BytesAllocated { get; private set; }
    /// <summary>Device bytes the pool holds now, rented or cached (BytesAllocated less what Trim freed).</summary>
    public long BytesHeld { get; private set; }
    /// <summary>Times the cache was freed to make room for an allocation the device refused.</summary>
    public int TrimsForRoom { get; private set; }
    public long Rents { get; private set; }
    public int InUse { get; private set; }

    /// <summary>When set, every rented buffer is filled with NaN first, so an element a kernel forgets to write shows
    /// up in checks.</summary>
    public bool Poison { get; set; }

    public MemoryBuffer1D<float, Stride1D.Dense> Rent(int length)
    {
        if (length <= 0) throw new KdException($"buffer pool: cannot allocate {length} elements");
        MemoryBuffer1D<float, Stride1D.Dense> buf;
        if (free.TryGetValue(length, out var stack) && stack.Count > 0)
        {
            buf = stack.Pop();
            freeSet.Remove(buf);
        }
        else
        {
            buf = AllocateOrTrim(length);
            Allocations++;
            BytesAllocated += 4L * length;
            BytesHeld += 4L * length;
        }
        Rents++;
        InUse++;
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

    MemoryBuffer1D<float, Stride1D.Dense> AllocateOrTrim(int length)
    {
        try { return Allocate(length); }
        catch (Exception) when (freeSet.Count > 0)
        {
            Trim();
            TrimsForRoom++;
            try { return Allocate(length); }
            catch (Exception e) { throw OutOfMemory(length, e); }   // the device's own message ("out of memory") is kept
        }
        catch (Exception e) { throw OutOfMemory(length, e); }
    }

    KdException OutOfMemory(int length, Exception e)
        => new($"{accelerator.Name}: could not allocate {Mib(4L * length)} for a tensor of {length} floats ({e.GetType().Name}: " +
               $"{e.Message}); {InUse} rented buffers hold {Mib(BytesHeld)}, none cached. Try a smaller batch (kd train --micro-batch " +
               "accumulates gradients over smaller ones).");

    static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):F1} MiB";

    /// <summary>Frees the cached (not rented) buffers, once the device has finished the work queued on them.</summary>
    public void Trim()
    {
        accelerator.Synchronize();
        foreach (var s in free.Values)
            while (s.Count > 0)
            {
                var b = s.Pop();
                BytesHeld -= 4L * b.Length;
                b.Dispose();
            }
        freeSet.Clear();
    }

    public void Dispose() => Trim();
}
