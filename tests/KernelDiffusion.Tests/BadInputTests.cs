using KernelDiffusion.Autodiff;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

[Collection("device")]
public sealed class BadInputTests(DeviceFixture fx)
{
    ComputeDevice D => fx.Device;

    [Fact]
    public void UnknownDeviceListsTheDevicesFound()
    {
        var e = Assert.Throws<KdException>(() => ComputeDevice.Open("tpu"));
        Assert.Contains("unknown device 'tpu'", e.Message);
        Assert.Contains("cpu:0", e.Message);
        var missing = Assert.Throws<KdException>(() => ComputeDevice.Open("cpu:7"));
        Assert.Contains("'cpu:7' is not available", missing.Message);
        Assert.Contains("cpu:0", missing.Message);
    }

    [Fact]
    public void MismatchedShapesNameTheOpAndBothTensors()
    {
        using var a = D.Zeros([2, 3], "a");
        using var b = D.Zeros([4], "b");
        var e = Assert.Throws<KdException>(() => Ops.Add(a, b));
        Assert.Equal("add: shapes [2,3] ('a') and [4] ('b') do not broadcast", e.Message);
        using var w = D.Zeros([5, 7], "w");
        var m = Assert.Throws<KdException>(() => Ops.MatMul(a, w));
        Assert.Contains("matmul", m.Message);
        Assert.Contains("[2,3] x [5,7]", m.Message);
        var l = Assert.Throws<KdException>(() => Ops.Linear(a, w, null));
        Assert.Contains("'a' [2,3]", l.Message);
        Assert.Contains("'w' [5,7]", l.Message);
        D.Tape.Reset();
    }

    [Fact]
    public void TensorsOnDifferentDevicesAreRefused()
    {
        using var other = ComputeDevice.Open("cpu");
        using var a = D.Zeros([3], "a");
        using var b = other.Zeros([3], "b");
        var e = Assert.Throws<KdException>(() => Ops.Add(a, b));
        Assert.Equal("add: 'a' (cpu:0) and 'b' (cpu:0) belong to different opened devices", e.Message);
    }

    [Fact]
    public void UseAfterTheTapeIsResetIsCaught()
    {
        using var a = D.FromArray([1, 2, 3], [3], "a");
        var t = Ops.Silu(a);
        t.Name = "activation";
        D.Tape.Reset();
        var e = Assert.Throws<KdException>(() => Ops.Add(t, a));
        Assert.Contains("add: input 'activation' [3] was used after its buffer went back to the pool", e.Message);
        Assert.Throws<KdException>(() => t.ToArray());
    }

    [Fact]
    public void UseAfterDisposeIsCaught()
    {
        var a = D.FromArray([1, 2, 3], [3], "weights");
        a.Dispose();
        var e = Assert.Throws<KdException>(() => Ops.Silu(a));
        Assert.Contains("'weights'", e.Message);
        Assert.Contains("disposed", e.Message);
    }

    [Fact]
    public void NanInACheckedInputIsCaught()
    {
        using var a = D.FromArray([1, float.NaN, 3, float.PositiveInfinity], [4], "x_t");
        D.CheckNumerics = true;
        try
        {
            var e = Assert.Throws<KdException>(() => Ops.Silu(a));
            Assert.Equal("silu: tensor 'x_t' [4] contains NaN or Inf (2 of 4 values)", e.Message);
        }
        finally
        {
            D.CheckNumerics = false;
            D.Tape.Reset();
        }
    }

    [Fact]
    public void OtherMisuseGetsClearErrors()
    {
        Assert.Contains("outside [0, 10)", Assert.Throws<KdException>(() => D.Labels([1, 10], 10)).Message);
        Assert.Contains("not positive", Assert.Throws<KdException>(() => D.Zeros([2, 0], "z")).Message);
        Assert.Contains("rank 5", Assert.Throws<KdException>(() => D.Zeros([1, 1, 1, 1, 1], "z")).Message);
        Assert.Contains("do not fill", Assert.Throws<KdException>(() => D.FromArray([1, 2], [3], "z")).Message);
        using var p = D.Parameter([1, 2, 3], [3], "p");
        var y = Ops.Silu(p);
        Assert.Contains("not a scalar", Assert.Throws<KdException>(() => D.Tape.Backward(y)).Message);
        using (D.Tape.NoGrad())
        {
            var s = Ops.Sum(Ops.Silu(p));
            Assert.Contains("no recorded graph", Assert.Throws<KdException>(() => D.Tape.Backward(s)).Message);
        }
        Assert.Contains("axis 3", Assert.Throws<KdException>(() => Ops.Sum(p, [3])).Message);
        D.Tape.Reset();
    }

    /// <summary>A device of 100 floats: the pool frees what it caches at other lengths and tries again before it gives up,
    /// and then names the request and what it holds.</summary>
    [Fact]
    public void PoolMakesRoomFromItsCacheThenNamesTheRequest()
    {
        const int capacity = 100;
        var allocated = new List<ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>>();
        ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense> Allocate(int n)
        {
            if (allocated.Where(b => !b.IsDisposed).Sum(b => b.Length) + n > capacity) throw new OutOfMemoryException("out of memory");
            var b = D.Accelerator.Allocate1D<float>(n);
            allocated.Add(b);
            return b;
        }
        using var pool = new BufferPool(D.Accelerator, Allocate);
        var a = pool.Rent(60);
        pool.Return(a);                                   // cached at 60
        var b = pool.Rent(50);                            // 60 + 50 > 100: the cache is freed, then it fits
        Assert.True(a.IsDisposed);
        Assert.Equal((1, 2L), (pool.TrimsForRoom, pool.Allocations));
        Assert.Equal(4L * 50, pool.BytesHeld);
        var c = pool.Rent(50);                            // fits beside b without trimming
        Assert.Equal(1, pool.TrimsForRoom);
        var e = Assert.Throws<KdException>(() => pool.Rent(10));   // nothing cached: a clear error
        Assert.Contains("could not allocate", e.Message);
        Assert.Contains("10 floats", e.Message);
        Assert.Contains("out of memory", e.Message);
        Assert.Contains("2 rented buffers", e.Message);
        Assert.Equal(2, pool.InUse);
        pool.Return(b);
        pool.Return(c);
        var again = pool.Rent(50);                        // the cache hands b or c back: no allocation
        Assert.Equal(3L, pool.Allocations);
        pool.Return(again);
    }
}
