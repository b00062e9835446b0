using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

/// <summary>One CPU accelerator for every kernel test: contexts are heavy and kernels compile once per accelerator.</summary>
public sealed class DeviceFixture : IDisposable
{
    public ComputeDevice Device { get; } = ComputeDevice.Open("cpu");
    public void Dispose() => Device.Dispose();
}

/// <summary>Kernel tests run one at a time: the CPU accelerator already runs each group on OS threads.</summary>
[CollectionDefinition("device", DisableParallelization = true)]
public sealed class DeviceCollection : ICollectionFixture<DeviceFixture>;
