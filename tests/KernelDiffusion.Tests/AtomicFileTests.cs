using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

public sealed class AtomicFileTests
{
    [Fact]
    public void AFailedWriteLeavesThePreviousFileIntact()
    {
        var dir = Directory.CreateTempSubdirectory("kd-atomic").FullName;
        try
        {
            var path = Path.Combine(dir, "sub", "a.txt");
            AtomicFile.WriteAllText(path, "first");
            Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
            {
                s.Write("half"u8);
                throw new IOException("disk full");
            }));
            Assert.Equal("first", File.ReadAllText(path));
            Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
            AtomicFile.WriteAllText(path, "second");
            Assert.Equal("second", File.ReadAllText(path));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
