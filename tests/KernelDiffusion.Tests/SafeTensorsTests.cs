using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using KernelDiffusion.Checkpoints;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    const string Source = "bad.safetensors";
    readonly string _dir = Directory.CreateTempSubdirectory("safetensors-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---- helpers ----

    /// <summary>A file from a header text (not padded) and a data section.</summary>
    static byte[] FileOf(string header, byte[] data) => FileOf(Encoding.UTF8.GetBytes(header), data);

    static byte[] FileOf(byte[] json, byte[] data)
    {
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        return bytes;
    }

    static byte[] FileOf(string header, int dataLength) => FileOf(header, new byte[dataLength]);

    /// <summary>A valid file of one tensor given as raw little-endian bytes.</summary>
    static SafeTensorsFile OneTensor(string dtype, string shape, byte[] data) =>
        SafeTensorsFile.Parse(FileOf($$$"""{"t":{"dtype":"{{{dtype}}}","shape":{{{shape}}},"data_offsets":[0,{{{data.Length}}}]}}""", data), "t.safetensors");

    static byte[] Halves(params ushort[] bits) => bits.SelectMany(b => new[] { (byte)b, (byte)(b >> 8) }).ToArray();

    static void AssertFails(byte[] bytes, string phrase)
    {
        var e = Assert.Throws<KdException>(() => SafeTensorsFile.Parse(bytes, Source));
        Assert.StartsWith($"{Source}: ", e.Message);
        Assert.Contains(phrase, e.Message);
    }

    static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    // ---- round trip and format ----

    [Fact]
    public void RoundTrip_IsBitExact()
    {
        float[] weights = [1f, -0f, float.Epsilon, float.MaxValue, float.NegativeInfinity, BitConverter.Int32BitsToSingle(0x7FC00123)];
        var tensors = new SafeTensorWrite[]
        {
            new("w", [2, 3], Float32: weights),
            new("scalar", [], Float32: [3.5f]),
            new("bias", [1], Float32: [-7.25f]),
            new("empty", [0, 4], Float32: []),
            new("ids", [2, 2], Int64: [long.MinValue, long.MaxValue, 0, -1]),
            new("step", [], Int64: [42]),
            new("one", [1], Int64: [9]),
        };
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["config"] = "{\"model\": \"unet\",\n\t\"channels\": [320, 640], \"name\": \"é😀\\\u0001\"}",
        };
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsFile.Write(path, tensors, metadata);

        var file = SafeTensorsFile.Read(path);
        Assert.Equal(metadata, file.Metadata);
        // I64 (8-byte) tensors come first, then F32, each group by name.
        Assert.Equal(["ids", "one", "step", "bias", "empty", "scalar", "w"], file.Tensors.Select(t => t.Name));
        foreach (var tensor in tensors)
        {
            var info = file.Info(tensor.Name);
            Assert.Equal(tensor.Shape, info.Shape);
            Assert.Equal(tensor.Float32?.Length ?? tensor.Int64!.Length, info.Count);
            if (tensor.Float32 is { } floats)
            {
                Assert.Equal("F32", info.DType);
                Assert.Equal(Bits(floats), Bits(file.ReadFloat32(tensor.Name)));
            }
            else
            {
                Assert.Equal("I64", info.DType);
                Assert.Equal(tensor.Int64, file.ReadInt64(tensor.Name));
            }
        }
        Assert.True(file.Contains("w"));
        Assert.False(file.Contains("W"));
    }

    [Fact]
    public void Serialize_MatchesPythonBytes()
    {
        // 79 bytes of JSON, padded with one space to 80.
        const string header = """{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} """;
        byte[] expected = [80, 0, 0, 0, 0, 0, 0, 0, .. Encoding.ASCII.GetBytes(header), 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40];

        byte[] actual = SafeTensorsFile.Serialize([new("a", [2], Float32: [1f, 2f])], new Dictionary<string, string> { ["k"] = "v" });

        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Serialize_OrdersBySizeThenNameAndEscapesLikeSerdeJson()
    {
        // 209 bytes of JSON (é is 2), padded with 7 spaces to 216; I64 before F32; metadata keys sorted.
        const string header =
            """{"__metadata__":{"a":"x\"\\\n\u001f/é","b":""},"c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"a":""" +
            """{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}""" + "       ";
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        Assert.Equal(216, headerBytes.Length);

        byte[] actual = SafeTensorsFile.Serialize(
            [new("b", [1], Float32: [0f]), new("c", [], Int64: [1]), new("a", [1], Float32: [0f])],
            new Dictionary<string, string> { ["b"] = "", ["a"] = "x\"\\\n\u001f/é" });

        Assert.Equal((ulong)headerBytes.Length, BinaryPrimitives.ReadUInt64LittleEndian(actual));
        Assert.Equal(header, Encoding.UTF8.GetString(actual, 8, headerBytes.Length));
        Assert.Equal(8 + headerBytes.Length + 16, actual.Length);
        Assert.Empty(SafeTensorsFile.Parse(SafeTensorsFile.Serialize([]), "empty").Tensors);
        Assert.Equal("{}      ", Encoding.ASCII.GetString(SafeTensorsFile.Serialize([]), 8, 8));
    }

    // ---- other dtypes ----

    [Fact]
    public void Read_ConvertsOtherDTypes()
    {
        // F16: 1, -2, the smallest subnormal (2^-24), +inf, -inf, NaN.
        var f16 = OneTensor("F16", "[6]", Halves(0x3C00, 0xC000, 0x0001, 0x7C00, 0xFC00, 0x7E00)).ReadFloat32("t");
        Assert.Equal([1f, -2f, MathF.Pow(2, -24), float.PositiveInfinity, float.NegativeInfinity], f16[..5]);
        Assert.True(float.IsNaN(f16[5]));

        // BF16 0x4049 is the upper half of 0x40490000 = 3.140625; 0xBFC0 is -1.5.
        Assert.Equal([3.140625f, -1.5f], OneTensor("BF16", "[2]", Halves(0x4049, 0xBFC0)).ReadFloat32("t"));

        var f64 = OneTensor("F64", "[3]", [.. BitConverter.GetBytes(0.1), .. BitConverter.GetBytes(-3.0), .. BitConverter.GetBytes(1e300)]);
        Assert.Equal([0.1f, -3f, float.PositiveInfinity], f64.ReadFloat32("t"));

        var i32 = OneTensor("I32", "[1,2]", [.. BitConverter.GetBytes(-5), .. BitConverter.GetBytes(int.MaxValue)]);
        Assert.Equal([-5f, 2147483648f], i32.ReadFloat32("t"));
        Assert.Equal([-5L, int.MaxValue], i32.ReadInt64("t"));

        var i16 = OneTensor("I16", "[2]", [.. BitConverter.GetBytes((short)-300), .. BitConverter.GetBytes((short)7)]);
        Assert.Equal([-300L, 7L], i16.ReadInt64("t"));
        Assert.Equal([-128L, 127L], OneTensor("I8", "[2]", [0x80, 0x7F]).ReadInt64("t"));

        var u8 = OneTensor("U8", "[3]", [0, 128, 255]);
        Assert.Equal([0f, 128f, 255f], u8.ReadFloat32("t"));
        Assert.Equal([0L, 128L, 255L], u8.ReadInt64("t"));

        var boolean = OneTensor("BOOL", "[3]", [0, 1, 1]);
        Assert.Equal([0f, 1f, 1f], boolean.ReadFloat32("t"));
        Assert.Equal([0L, 1L, 1L], boolean.ReadInt64("t"));

        var scalar = OneTensor("I64", "[]", BitConverter.GetBytes(-9L));
        Assert.Equal(1, scalar.Info("t").Count);
        Assert.Equal([-9f], scalar.ReadFloat32("t"));
    }

    [Fact]
    public void ReadInt64_AcceptsIntegralFloatsOnly()
    {
        Assert.Equal([1L, -2L], OneTensor("F16", "[2]", Halves(0x3C00, 0xC000)).ReadInt64("t"));
        Assert.Equal([-3L, 4L], OneTensor("F64", "[2]", [.. BitConverter.GetBytes(-3.0), .. BitConverter.GetBytes(4.0)]).ReadInt64("t"));

        foreach (var bad in new[] { 1.5f, float.NaN, float.PositiveInfinity, 1e19f })
        {
            var file = OneTensor("F32", "[2]", [.. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(bad)]);
            var e = Assert.Throws<KdException>(() => file.ReadInt64("t"));
            Assert.StartsWith("t.safetensors: tensor 't' of F32 holds", e.Message);
            Assert.Contains("at index 1, which is not an integer", e.Message);
        }
    }

    // ---- corruption ----

    const string A8 = """ "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]} """;

    [Theory]
    [InlineData("[]", 0, "header does not start with '{'")]
    [InlineData(" {}", 0, "header does not start with '{'")]
    [InlineData("""{"a":""", 0, "header is not valid JSON (")]
    [InlineData("""{"a":1} x""", 0, "header is not valid JSON (")]
    [InlineData("""{"a":5}""", 0, "tensor 'a' is a number, not an object")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' is missing \"dtype\"")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,4]}}""", 4, "tensor 'a' is missing \"shape\"")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", 4, "tensor 'a' is missing \"data_offsets\"")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}""", 4, "tensor 'a' has unknown field 'extra'")]
    [InlineData("""{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' has duplicate field 'dtype'")]
    [InlineData("""{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}""", 1, "tensor 'a' has unknown dtype 'F8'")]
    [InlineData("""{"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}""", 4, "tensor 'a' dtype is a number, not a string")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape [2,-3] has negative dimension -3")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape holds 1.5, which is not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1e2],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape holds 1e2, which is not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}""", 4, "which is not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":"[1]","data_offsets":[0,4]}}""", 4, "tensor 'a' shape is a string, not an array")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4, "tensor 'a' shape [4294967296,4294967296] of F32 is too large: its byte count overflows 64 bits")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", 8, "tensor 'a' data_offsets [0,4,8] must be two numbers [begin, end]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 0, "tensor 'a' data_offsets [-4, 0] are negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8, "tensor 'a' data_offsets [8, 4] end before they begin")]
    [InlineData("""{"input_blocks.0.0.weight":{"dtype":"F32","shape":[64,1,3,3],"data_offsets":[0,12]}}""", 12,
        "tensor 'input_blocks.0.0.weight' data_offsets [0, 12] hold 12 bytes but shape [64,1,3,3] of F32 needs 2304")]
    [InlineData("{" + A8 + ""","b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "offsets of 'a' [0, 8] and 'b' [4, 12] overlap")]
    [InlineData("{" + A8 + ""","b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}""", 20, "offsets of 'a' [0, 8] and 'b' [12, 20] leave a gap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "offsets of 'a' [4, 12] leave a gap at the start of the data section")]
    [InlineData("""{"a":{"dtype":"F32","shape":[576],"data_offsets":[0,2304]}}""", 100, "truncated: the data section ends at byte 100 but tensors need 2304")]
    [InlineData("{" + A8 + "}", 10, "2 bytes after the last tensor")]
    [InlineData("{}", 3, "3 bytes after the last tensor")]
    [InlineData("{" + A8 + "," + A8 + "}", 8, "duplicate tensor name 'a'")]
    [InlineData("{" + A8 + ""","\u0061":{}}""", 8, "duplicate tensor name 'a'")]
    [InlineData("""{"\ud800":{}}""", 0, "header holds a key that is not valid Unicode")]
    [InlineData("""{"__metadata__":{"k":"v"},"__metadata__":{}}""", 0, "duplicate '__metadata__'")]
    [InlineData("""{"__metadata__":[]}""", 0, "'__metadata__' is an array, not an object")]
    [InlineData("""{"__metadata__":{"k":1}}""", 0, "'__metadata__' value of 'k' is a number, not a string")]
    [InlineData("""{"__metadata__":{"k":"v","k":"w"}}""", 0, "'__metadata__' has duplicate key 'k'")]
    [InlineData("""{"__metadata__":{"k":"\udc00"}}""", 0, "header holds a string that is not valid Unicode")]
    public void Parse_RejectsCorruptHeaders(string header, int dataLength, string phrase) =>
        AssertFails(FileOf(header, dataLength), phrase);

    [Fact]
    public void Parse_RejectsBadLengthsAndEncoding()
    {
        AssertFails(new byte[5], "too short for a header: 5 bytes");

        byte[] huge = FileOf("{}", 2);
        BinaryPrimitives.WriteUInt64LittleEndian(huge, 9_999_999_999);
        AssertFails(huge, "header length 9999999999 exceeds the file's 12 bytes");
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        AssertFails(huge, $"header length {ulong.MaxValue} exceeds the file's 12 bytes");

        AssertFails(FileOf("", 0), "header does not start with '{'");
        AssertFails(FileOf([.. "{\""u8, 0xFF, .. "\":{}}"u8], []), "header is not valid UTF-8");

        // Over the cap yet inside the file: refused before the 100 MB header is looked at.
        byte[] capped = GC.AllocateUninitializedArray<byte>(100_000_016);
        BinaryPrimitives.WriteUInt64LittleEndian(capped, 100_000_001);
        AssertFails(capped, "header length 100000001 exceeds the limit of 100000000 bytes");
    }

    [Fact]
    public void MissingTensorAndFile_NameTheCulprit()
    {
        var file = OneTensor("U8", "[1]", [1]);
        var e = Assert.Throws<KdException>(() => file.ReadFloat32("nope"));
        Assert.Equal("t.safetensors: no tensor named 'nope'", e.Message);
        Assert.Throws<KdException>(() => file.ReadInt64("nope"));
        Assert.Throws<KdException>(() => file.Info("nope"));

        string missing = Path.Combine(_dir, "missing.safetensors");
        e = Assert.Throws<KdException>(() => SafeTensorsFile.Read(missing));
        Assert.StartsWith($"{missing}: cannot read the file", e.Message);
    }

    // ---- writing ----

    public static TheoryData<SafeTensorWrite[], string> InvalidWrites => new()
    {
        { [new("a", [1], Float32: [1f]), new("a", [1], Int64: [1])], "duplicate tensor name 'a'" },
        { [new("__metadata__", [1], Float32: [1f])], "tensor name '__metadata__' is reserved" },
        { [new("", [1], Float32: [1f])], "a tensor has an empty name" },
        { [new("a", [2, 2], Float32: [1f, 2f, 3f])], "tensor 'a' has 3 values but shape [2,2] needs 4" },
        { [new("a", [], Int64: [])], "tensor 'a' has 0 values but shape [] needs 1" },
        { [new("a", [-1, -2], Float32: [1f, 2f])], "tensor 'a' shape [-1,-2] has negative dimension -1" },
        { [new("a", [1L << 40, 1L << 40], Float32: [1f])], "needs more than 2^63 bytes" },
        { [new("a", [1], Float32: [1f], Int64: [1])], "tensor 'a' must have exactly one of Float32 or Int64 data" },
        { [new("a", [1])], "tensor 'a' must have exactly one of Float32 or Int64 data" },
        { [new("\ud800", [1], Float32: [1f])], "is not valid Unicode" },
    };

    [Theory]
    [MemberData(nameof(InvalidWrites))]
    public void Serialize_RejectsInvalidTensors(SafeTensorWrite[] tensors, string phrase)
    {
        var e = Assert.Throws<KdException>(() => SafeTensorsFile.Serialize(tensors));
        Assert.Contains(phrase, e.Message);
    }

    [Fact]
    public void Write_IsAtomic()
    {
        string path = Path.Combine(_dir, "out.safetensors");
        SafeTensorsFile.Write(path, [new("x", [2], Float32: [1f, 2f])]);
        Assert.Equal([path], Directory.GetFiles(_dir));
        byte[] before = File.ReadAllBytes(path);

        var e = Assert.Throws<KdException>(() => SafeTensorsFile.Write(path, [new("x", [3], Float32: [1f, 2f])]));
        Assert.StartsWith($"{path}: tensor 'x' has 2 values", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_dir));

        SafeTensorsFile.Write(path, [new("y", [], Int64: [5])]);
        Assert.Equal([5L], SafeTensorsFile.Read(path).ReadInt64("y"));
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    // ---- fuzz ----

    [Fact]
    public void Fuzz_CorruptFilesOnlyEverThrowKdException()
    {
        byte[][] seeds =
        [
            SafeTensorsFile.Serialize(
                [new("conv.weight", [2, 1, 3, 3], Float32: Enumerable.Range(0, 18).Select(i => i * 0.5f).ToArray()),
                 new("conv.bias", [2], Float32: [0.25f, -1f]), new("norm.scale", [], Float32: [1f])],
                new Dictionary<string, string> { ["format"] = "pt", ["config"] = """{"channels": [32, 64], "name": "tiny"}""" }),
            SafeTensorsFile.Serialize(
                [new("timesteps", [4], Int64: [0, 250, 500, 999]), new("step", [], Int64: [7]), new("table", [2, 3], Int64: [1, 2, 3, 4, 5, 6])]),
            SafeTensorsFile.Serialize(
                [new("a", [0, 5], Float32: []), new("b", [1], Int64: [long.MaxValue]), new("c", [3], Float32: [1f, 2f, 3f])],
                new Dictionary<string, string> { ["k"] = "v" }),
        ];
        var random = new Random(20240611);
        const string ascii = "{}[]\":,0123456789-.eE adftshpF3I6BOLU8_\\";
        int parsed = 0, rejected = 0;
        var clock = Stopwatch.StartNew();

        for (int iteration = 0; iteration < 3000; iteration++)
        {
            byte[] seed = seeds[iteration % seeds.Length];
            byte[] bytes = (byte[])seed.Clone();
            int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(seed);
            int mutation = random.Next(4);
            switch (mutation)
            {
                case 0: // flip 1-4 bytes anywhere
                    for (int n = random.Next(1, 5); n > 0; n--) bytes[random.Next(bytes.Length)] ^= (byte)random.Next(1, 256);
                    break;
                case 1: // truncate
                    bytes = bytes[..random.Next(bytes.Length)];
                    break;
                case 2: // a random header length: huge, or near the real one
                    ulong length = random.Next(3) switch
                    {
                        0 => (ulong)random.NextInt64() * 2 + (ulong)random.Next(2),
                        1 => (ulong)random.Next(200_000_000),
                        _ => (ulong)(headerEnd - 8 + random.Next(-16, 17)),
                    };
                    BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
                    break;
                default: // splice random ASCII into the header, keeping or fixing up the length
                    string text = new(Enumerable.Range(0, random.Next(1, 9)).Select(_ => ascii[random.Next(ascii.Length)]).ToArray());
                    int at = random.Next(8, headerEnd + 1);
                    bytes = [.. bytes[..at], .. Encoding.ASCII.GetBytes(text), .. bytes[at..]];
                    if (random.Next(2) == 0)
                        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(headerEnd - 8 + text.Length));
                    break;
            }

            try
            {
                var file = SafeTensorsFile.Parse(bytes, "fuzz.safetensors");
                foreach (var info in file.Tensors)
                {
                    Assert.Equal(info.Count, file.ReadFloat32(info.Name).Length);
                    try
                    {
                        file.ReadInt64(info.Name);
                    }
                    catch (KdException e) when (e.Message.Contains("which is not an integer"))
                    {
                        // A flipped bit can make a float non-integral: that refusal is the documented behaviour.
                    }
                }
                parsed++;
            }
            catch (KdException e)
            {
                Assert.StartsWith("fuzz.safetensors: ", e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration}, mutation {mutation}: {e}");
            }
        }

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"fuzz took {clock.Elapsed}");
        // Both outcomes must occur, or the mutations are not exercising the reader.
        Assert.True(parsed > 100 && rejected > 100, $"parsed {parsed}, rejected {rejected}");
    }
}
