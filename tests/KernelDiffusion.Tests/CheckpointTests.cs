using KernelDiffusion.Checkpoints;
using KernelDiffusion.Nn;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

[Collection("device")]
public sealed class CheckpointTests(DeviceFixture fx) : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("kd-ckpt").FullName;
    public void Dispose() => Directory.Delete(dir, recursive: true);

    static readonly ModelConfig Tiny = new()
    {
        ImageSize = 8, InChannels = 2, ModelChannels = 32, OutChannels = 2, NumResBlocks = 1, AttentionResolutions = [2],
        ChannelMult = [1, 2], NumClasses = 3, NumHeadChannels = 32, UseScaleShiftNorm = true, ResblockUpdown = true,
    };

    string SaveTiny(ModelConfig c, string name)
    {
        using var m = new UNet(fx.Device, c);
        m.Initialize(5, randomizeConstants: true);
        var path = Path.Combine(dir, name);
        ModelCheckpoint.Save(path, m);
        return path;
    }

    [Fact]
    public void SaveAndLoadRoundTripBitwiseWithTheConfiguration()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        using var original = new UNet(fx.Device, Tiny);
        original.Initialize(5, randomizeConstants: true);
        using var loaded = ModelCheckpoint.Load(fx.Device, path);
        Assert.Equal(Tiny.ToJson(), loaded.Config.ToJson());
        var a = original.NamedParameters().ToList();
        var b = loaded.NamedParameters().ToList();
        Assert.Equal(a.Select(p => p.Name), b.Select(p => p.Name));
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i].Param.ToArray(), b[i].Param.ToArray());
        Assert.Single(Directory.GetFiles(dir));   // no temporary left behind
    }

    [Fact]
    public void AMismatchedConfigurationNamesTheFirstMismatch()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        var other = Path.Combine(dir, "other.json");
        File.WriteAllText(other, (Tiny with { ModelChannels = 64 }).ToJson());
        var e = Assert.Throws<KdException>(() => ModelCheckpoint.Load(fx.Device, path, other));
        Assert.Equal($"{path}: tensor 'time_embed.0.weight' is [128,32] in the file but [256,64] in the configuration", e.Message);
    }

    [Fact]
    public void MissingAndUnexpectedTensorsAreNamed()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        var file = SafeTensorsFile.Read(path);
        SafeTensorWrite Copy(SafeTensorInfo t) => new(t.Name, t.Shape, file.ReadFloat32(t.Name));
        var missing = Path.Combine(dir, "missing.safetensors");
        SafeTensorsFile.Write(missing, file.Tensors.Where(t => t.Name != "out.2.bias").Select(Copy), file.Metadata);
        Assert.Contains("tensor 'out.2.bias' [2] is missing", Assert.Throws<KdException>(() => ModelCheckpoint.Load(fx.Device, missing)).Message);
        var extra = Path.Combine(dir, "extra.safetensors");
        SafeTensorsFile.Write(extra, file.Tensors.Select(Copy).Append(new SafeTensorWrite("ema.out.2.bias", [2], [1f, 2f])), file.Metadata);
        Assert.Contains("tensor 'ema.out.2.bias' is not a parameter", Assert.Throws<KdException>(() => ModelCheckpoint.Load(fx.Device, extra)).Message);
        var bare = Path.Combine(dir, "bare.safetensors");
        SafeTensorsFile.Write(bare, file.Tensors.Select(Copy));
        Assert.Contains("no model configuration in its metadata: pass one with --config", Assert.Throws<KdException>(() => ModelCheckpoint.Load(fx.Device, bare)).Message);
    }

    [Fact]
    public void ACorruptCheckpointFailsCleanlyAndLeavesNoModel()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        int inUse = fx.Device.Pool.InUse;
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<KdException>(() => ModelCheckpoint.Load(fx.Device, path));
        Assert.StartsWith(path, e.Message);
        Assert.Equal(inUse, fx.Device.Pool.InUse);
    }

    [Fact]
    public void TraceWritesEveryBlockAndTheGradients()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        using var model = ModelCheckpoint.Load(fx.Device, path);
        var rng = new Random(3);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var x = R(2 * 2 * 8 * 8);
        var inputs = Path.Combine(dir, "in.safetensors");
        SafeTensorsFile.Write(inputs, [
            new SafeTensorWrite("x", [2, 2, 8, 8], x), new SafeTensorWrite("t", [2], Int64: [10, 990]),
            new SafeTensorWrite("y", [2], Int64: [2, 0]), new SafeTensorWrite("g", [2, 2, 8, 8], R(256)),
        ]);
        var result = ModelTrace.Run(fx.Device, model, SafeTensorsFile.Read(inputs), inputs, grad: true).ToDictionary(t => t.Name);
        foreach (var name in new[] { "out", "input_blocks.0", "input_blocks.3", "middle_block", "output_blocks.0", "output_blocks.3", "grad.x", "grad.out.2.weight", "grad.label_emb.weight" })
            Assert.Contains(name, result.Keys);
        Assert.Equal(1 + 4 + 1 + 4 + 1 + model.NamedParameters().Count(), result.Count);   // out, 4 input blocks, middle, 4 output blocks, grad.x, grads

        // 'out' is what the model computes for these inputs.
        using var xt = fx.Device.FromArray(x, [2, 2, 8, 8], "x");
        using var tt = fx.Device.FromArray([10f, 990f], [2], "t");
        using var yt = fx.Device.Labels([2, 0], 3);
        using (fx.Device.Tape.NoGrad())
            Assert.Equal(((UNet)model).Forward(xt, tt, yt).ToArray(), result["out"].Float32!);
        fx.Device.Tape.Reset();
        Assert.Contains(result["grad.x"].Float32!, v => v != 0);
    }

    [Fact]
    public void TraceRefusesBadInputsNamingThem()
    {
        var path = SaveTiny(Tiny, "m.safetensors");
        using var model = ModelCheckpoint.Load(fx.Device, path);
        var inputs = Path.Combine(dir, "in.safetensors");
        SafeTensorsFile.Write(inputs, [
            new SafeTensorWrite("x", [1, 2, 8, 8], new float[128]), new SafeTensorWrite("t", [1], Int64: [10]),
            new SafeTensorWrite("y", [1], Int64: [3]),
        ]);
        var e = Assert.Throws<KdException>(() => ModelTrace.Run(fx.Device, model, SafeTensorsFile.Read(inputs), inputs, grad: false));
        Assert.Contains("tensor 'y' holds label 3, outside num_classes 3", e.Message);
        SafeTensorsFile.Write(inputs, [new SafeTensorWrite("x", [1, 3, 8, 8], new float[192]), new SafeTensorWrite("t", [1], Int64: [10]), new SafeTensorWrite("y", [1], Int64: [0])]);
        e = Assert.Throws<KdException>(() => ModelTrace.Run(fx.Device, model, SafeTensorsFile.Read(inputs), inputs, grad: false));
        Assert.Contains("must be [N, 2, H, W] (in_channels 2)", e.Message);
    }
}
