namespace KernelDiffusion.Runtime;

/// <summary>An error caused by the caller's input (a device, a shape, a file): its message says what went wrong
/// and names the culprit, so the CLI prints it without a stack trace.</summary>
public sealed class KdException(string message) : Exception(message);
