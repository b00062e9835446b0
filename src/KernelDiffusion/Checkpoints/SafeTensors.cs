using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using KernelDiffusion.Runtime;

namespace KernelDiffusion.Checkpoints;

/// <summary>One tensor's header entry. <see cref="Begin"/> and <see cref="End"/> are byte offsets relative to the
/// start of the data section, as the format stores them.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/>, 1 for a scalar (shape []).
    /// Validated files guarantee it fits a long.</summary>
    public long Count => Shape.Aggregate(1L, (product, dim) => product * dim);
}

/// <summary>A tensor to write, row-major: exactly one of <see cref="Float32"/> (stored as F32) or
/// <see cref="Int64"/> (stored as I64), whose length must equal the product of <see cref="Shape"/>.</summary>
public sealed record SafeTensorWrite(string Name, long[] Shape, float[]? Float32 = null, long[]? Int64 = null);

/// <summary>An opened safetensors file, validated in full when opened so that reading a tensor later can only fail
/// on the caller's request (a missing name, a conversion that would lose information), never on the file.
/// It holds the whole file in memory: the checkpoints here are at most a few hundred MB.</summary>
public sealed class SafeTensorsFile
{
    /// <summary>Python's safetensors refuses larger headers; so do we, before allocating anything for one.</summary>
    const int MaxHeaderLength = 100_000_000;
    const string MetadataKey = "__metadata__";

    /// <summary>Bytes per element of every dtype this reader understands.</summary>
    static readonly Dictionary<string, int> DTypeSizes = new()
    {
        ["F64"] = 8, ["I64"] = 8, ["F32"] = 4, ["I32"] = 4, ["F16"] = 2,
        ["BF16"] = 2, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    readonly string _source;
    readonly byte[] _bytes;
    readonly int _dataStart;
    readonly Dictionary<string, SafeTensorInfo> _byName;

    SafeTensorsFile(string source, byte[] bytes, int dataStart, Dictionary<string, string> metadata, SafeTensorInfo[] tensors)
    {
        _source = source;
        _bytes = bytes;
        _dataStart = dataStart;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Metadata = metadata.AsReadOnly();
        Tensors = Array.AsReadOnly(tensors);
    }

    /// <summary>The "__metadata__" strings (e.g. format, model configuration); empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every tensor, in data-offset order (the order of their bytes in the file).</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Reads and validates the file at <paramref name="path"/>; every problem, including an unreadable
    /// file, is a <see cref="KdException"/> that starts with the path.</summary>
    public static SafeTensorsFile Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KdException($"{path}: cannot read the file ({e.Message})");
        }
        return Parse(bytes, path);
    }

    /// <summary>Validates a whole file held in memory; <paramref name="sourceName"/> starts every error message.
    /// The file keeps <paramref name="bytes"/> (no copy), so the caller must not change them afterwards.</summary>
    public static SafeTensorsFile Parse(byte[] bytes, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(sourceName);
        if (bytes.Length < 8)
            throw Error(sourceName, $"too short for a header: {bytes.Length} bytes, but the header length alone takes 8");

        // Both length checks come before anything is allocated for the header, so a hostile length costs nothing.
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8))
            throw Error(sourceName, $"header length {headerLength} exceeds the file's {bytes.Length} bytes");
        if (headerLength > MaxHeaderLength)
            throw Error(sourceName, $"header length {headerLength} exceeds the limit of {MaxHeaderLength} bytes");

        var header = bytes.AsMemory(8, (int)headerLength);
        if (header.IsEmpty || header.Span[0] != (byte)'{')
            throw Error(sourceName, "header does not start with '{'");
        if (!Utf8.IsValid(header.Span))
            throw Error(sourceName, "header is not valid UTF-8");

        Dictionary<string, string> metadata;
        List<SafeTensorInfo> tensors;
        try
        {
            using var document = JsonDocument.Parse(header);
            (metadata, tensors) = ReadHeader(sourceName, document.RootElement);
        }
        catch (JsonException e)
        {
            throw Error(sourceName, $"header is not valid JSON ({e.Message})");
        }

        int dataStart = 8 + (int)headerLength;
        var ordered = CheckLayout(sourceName, tensors, bytes.Length - dataStart);
        return new SafeTensorsFile(sourceName, bytes, dataStart, metadata, ordered);
    }

    /// <summary>Whether the file has a tensor of this name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>; a missing name is a <see cref="KdException"/> naming
    /// the file and the tensor, since it usually means the checkpoint does not fit the model.</summary>
    public SafeTensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var info) ? info : throw Error(_source, $"no tensor named '{name}'");

    /// <summary>The tensor's values as floats, whatever its dtype: F32 as is, the other float types converted
    /// (F64 rounds), integers converted (large ones round), BOOL as 0 or 1.</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Info(name);
        var data = Data(info);
        var values = new float[info.Count];
        switch (info.DType)
        {
            case "F32": for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]); break;
            case "F64": for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(data[(8 * i)..]); break;
            case "F16": for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(data[(2 * i)..]); break;
            // BF16 is the upper half of an F32.
            case "BF16": for (int i = 0; i < values.Length; i++) values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16); break;
            default:
                // Integer dtypes and BOOL: decoded once, in ReadInt64.
                var ints = ReadInt64(name);
                for (int i = 0; i < values.Length; i++) values[i] = ints[i];
                break;
        }
        return values;
    }

    /// <summary>The tensor's values as longs: integer dtypes as is, BOOL as 0 or 1, float dtypes only when every
    /// value is a whole number in range, so that no index or count is silently truncated.</summary>
    public long[] ReadInt64(string name)
    {
        var info = Info(name);
        var data = Data(info);
        var values = new long[info.Count];
        switch (info.DType)
        {
            case "I64": for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(data[(8 * i)..]); break;
            case "I32": for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt32LittleEndian(data[(4 * i)..]); break;
            case "I16": for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt16LittleEndian(data[(2 * i)..]); break;
            case "I8": for (int i = 0; i < values.Length; i++) values[i] = (sbyte)data[i]; break;
            case "U8": for (int i = 0; i < values.Length; i++) values[i] = data[i]; break;
            case "BOOL": for (int i = 0; i < values.Length; i++) values[i] = data[i] != 0 ? 1 : 0; break;
            case "F64": for (int i = 0; i < values.Length; i++) values[i] = Integral(info, i, BinaryPrimitives.ReadDoubleLittleEndian(data[(8 * i)..])); break;
            default:
                // F32, F16 and BF16 values are all exact as doubles.
                var floats = ReadFloat32(name);
                for (int i = 0; i < values.Length; i++) values[i] = Integral(info, i, floats[i]);
                break;
        }
        return values;
    }

    /// <summary>Writes the tensors to <paramref name="path"/> as Python's safetensors would, atomically, so a failed
    /// write (invalid tensors included) leaves any existing file untouched.</summary>
    public static void Write(string path, IEnumerable<SafeTensorWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        byte[] bytes = Serialize(tensors, metadata, path);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>The bytes Python's safetensors writes for these tensors: sorted by descending dtype size then name,
    /// offsets contiguous from 0, compact header with "__metadata__" first, padded with spaces to a multiple of 8.
    /// Metadata keys are sorted by name (Python writes them in hash order).</summary>
    public static byte[] Serialize(IEnumerable<SafeTensorWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Serialize(tensors, metadata, "safetensors");

    static byte[] Serialize(IEnumerable<SafeTensorWrite> tensors, IReadOnlyDictionary<string, string>? metadata, string target)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var entries = CheckWrites(target, tensors, strict);
        // Rust compares names as UTF-8 bytes, which differs from UTF-16 ordinal order beyond the BMP.
        var byUtf8 = Comparer<byte[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b));
        var ordered = entries.OrderByDescending(e => e.ElementSize).ThenBy(e => e.Utf8Name, byUtf8).ToList();

        var json = new StringBuilder("{");
        if (metadata is not null)
        {
            json.Append($"\"{MetadataKey}\":{{");
            var keys = metadata.Keys.Select(k => (Key: k, Utf8: Encode(target, strict, k, "metadata key"))).OrderBy(k => k.Utf8, byUtf8);
            string separator = "";
            foreach (var (key, _) in keys)
            {
                string value = metadata[key] ?? throw Error(target, $"metadata '{key}' has a null value");
                Encode(target, strict, value, $"metadata '{key}'"); // only to refuse a lone surrogate
                json.Append(separator).Append(Quote(key)).Append(':').Append(Quote(value));
                separator = ",";
            }
            json.Append('}');
            if (ordered.Count > 0) json.Append(',');
        }
        long offset = 0;
        for (int i = 0; i < ordered.Count; i++)
        {
            var entry = ordered[i];
            json.Append(i == 0 ? "" : ",").Append(Quote(entry.Tensor.Name))
                .Append($":{{\"dtype\":\"{entry.DType}\",\"shape\":[{string.Join(',', entry.Tensor.Shape)}],\"data_offsets\":[{offset},{offset + entry.ByteCount}]}}");
            offset += entry.ByteCount;
        }
        json.Append('}');
        // Python pads the header with spaces so that the data section starts 8-byte aligned.
        int headerLength = strict.GetByteCount(json.ToString());
        json.Append(' ', (8 - headerLength % 8) % 8);
        byte[] header = strict.GetBytes(json.ToString());

        long total = 8L + header.Length + offset;
        if (total > Array.MaxLength)
            throw Error(target, $"{total} bytes are too many to serialize in memory");
        var bytes = new byte[total];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        var data = bytes.AsSpan(8 + header.Length);
        foreach (var entry in ordered)
        {
            if (entry.Tensor.Float32 is { } floats)
                for (int i = 0; i < floats.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data[(4 * i)..], floats[i]);
            else
                for (int i = 0; i < entry.Tensor.Int64!.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(data[(8 * i)..], entry.Tensor.Int64[i]);
            data = data[(int)entry.ByteCount..];
        }
        return bytes;
    }

    /// <summary>A validated tensor to write, with what ordering and layout need.</summary>
    sealed record WriteEntry(SafeTensorWrite Tensor, byte[] Utf8Name, string DType, int ElementSize, long ByteCount);

    /// <summary>Rejects what Python's safetensors would reject or what could not be read back as written.</summary>
    static List<WriteEntry> CheckWrites(string target, IEnumerable<SafeTensorWrite> tensors, UTF8Encoding strict)
    {
        var entries = new List<WriteEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tensor in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor);
            string name = tensor.Name;
            if (string.IsNullOrEmpty(name))
                throw Error(target, "a tensor has an empty name");
            if (name == MetadataKey)
                throw Error(target, $"tensor name '{MetadataKey}' is reserved for the metadata");
            if (!names.Add(name))
                throw Error(target, $"duplicate tensor name '{name}'");
            if ((tensor.Float32 is null) == (tensor.Int64 is null))
                throw Error(target, $"tensor '{name}' must have exactly one of Float32 or Int64 data");
            if (tensor.Shape is null)
                throw Error(target, $"tensor '{name}' has no shape");
            foreach (long dim in tensor.Shape)
                if (dim < 0)
                    throw Error(target, $"tensor '{name}' shape {Format(tensor.Shape)} has negative dimension {dim}");

            (string dtype, int size, long length) = tensor.Float32 is { } f ? ("F32", 4, f.Length) : ("I64", 8, tensor.Int64!.LongLength);
            long byteCount = ByteCount(tensor.Shape, size);
            if (byteCount < 0 || byteCount / size != length)
                throw Error(target, $"tensor '{name}' has {length} values but shape {Format(tensor.Shape)} needs {(byteCount < 0 ? "more than 2^63 bytes" : byteCount / size)}");
            entries.Add(new WriteEntry(tensor, Encode(target, strict, name, $"tensor name '{name}'"), dtype, size, byteCount));
        }
        return entries;
    }

    /// <summary>UTF-8 bytes of a name or value; a lone surrogate could not round-trip, so it is refused.</summary>
    static byte[] Encode(string target, UTF8Encoding strict, string text, string what)
    {
        try
        {
            return strict.GetBytes(text);
        }
        catch (EncoderFallbackException)
        {
            throw Error(target, $"{what} is not valid Unicode (it holds a lone surrogate)");
        }
    }

    /// <summary>A JSON string escaped exactly as serde_json (Python's safetensors) escapes it: quote, backslash,
    /// and control characters only, with lowercase hex; everything else is written raw.</summary>
    static string Quote(string text)
    {
        var quoted = new StringBuilder(text.Length + 2).Append('"');
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': quoted.Append("\\\""); break;
                case '\\': quoted.Append("\\\\"); break;
                case '\b': quoted.Append("\\b"); break;
                case '\f': quoted.Append("\\f"); break;
                case '\n': quoted.Append("\\n"); break;
                case '\r': quoted.Append("\\r"); break;
                case '\t': quoted.Append("\\t"); break;
                case < ' ': quoted.Append($"\\u{(int)c:x4}"); break;
                default: quoted.Append(c); break;
            }
        }
        return quoted.Append('"').ToString();
    }

    static (Dictionary<string, string> Metadata, List<SafeTensorInfo> Tensors) ReadHeader(string source, JsonElement root)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<SafeTensorInfo>();
        // JsonDocument keeps duplicate keys (the last one wins on lookup); the format forbids them.
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            string name = NameOf(source, property);
            if (!keys.Add(name))
                throw Error(source, name == MetadataKey ? $"duplicate '{MetadataKey}'" : $"duplicate tensor name '{name}'");
            if (name == MetadataKey)
                metadata = ReadMetadata(source, property.Value);
            else
                tensors.Add(ReadEntry(source, name, property.Value));
        }
        return (metadata, tensors);
    }

    static Dictionary<string, string> ReadMetadata(string source, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw Error(source, $"'{MetadataKey}' is {Describe(element)}, not an object");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            string key = NameOf(source, property);
            if (property.Value.ValueKind != JsonValueKind.String)
                throw Error(source, $"'{MetadataKey}' value of '{key}' is {Describe(property.Value)}, not a string");
            if (!metadata.TryAdd(key, StringOf(source, property.Value)))
                throw Error(source, $"'{MetadataKey}' has duplicate key '{key}'");
        }
        return metadata;
    }

    static SafeTensorInfo ReadEntry(string source, string name, JsonElement entry)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw Error(source, $"tensor '{name}' is {Describe(entry)}, not an object");
        JsonElement? dtypeField = null, shapeField = null, offsetsField = null;
        foreach (var field in entry.EnumerateObject())
        {
            string key = NameOf(source, field);
            switch (key)
            {
                case "dtype": dtypeField = Once(dtypeField); break;
                case "shape": shapeField = Once(shapeField); break;
                case "data_offsets": offsetsField = Once(offsetsField); break;
                default: throw Error(source, $"tensor '{name}' has unknown field '{key}'");
            }

            JsonElement Once(JsonElement? previous) =>
                previous is null ? field.Value : throw Error(source, $"tensor '{name}' has duplicate field '{key}'");
        }

        var dtypeValue = dtypeField ?? throw Missing("dtype");
        if (dtypeValue.ValueKind != JsonValueKind.String)
            throw Error(source, $"tensor '{name}' dtype is {Describe(dtypeValue)}, not a string");
        string dtype = StringOf(source, dtypeValue);
        if (!DTypeSizes.TryGetValue(dtype, out int size))
            throw Error(source, $"tensor '{name}' has unknown dtype '{dtype}' (expected one of {string.Join(", ", DTypeSizes.Keys)})");

        long[] shape = Integers(source, $"tensor '{name}' shape", shapeField ?? throw Missing("shape"));
        foreach (long dim in shape)
            if (dim < 0)
                throw Error(source, $"tensor '{name}' shape {Format(shape)} has negative dimension {dim}");

        long[] offsets = Integers(source, $"tensor '{name}' data_offsets", offsetsField ?? throw Missing("data_offsets"));
        if (offsets.Length != 2)
            throw Error(source, $"tensor '{name}' data_offsets {Format(offsets)} must be two numbers [begin, end]");
        (long begin, long end) = (offsets[0], offsets[1]);
        if (begin < 0 || end < 0)
            throw Error(source, $"tensor '{name}' data_offsets [{begin}, {end}] are negative");
        if (end < begin)
            throw Error(source, $"tensor '{name}' data_offsets [{begin}, {end}] end before they begin");

        long byteCount = ByteCount(shape, size);
        if (byteCount < 0)
            throw Error(source, $"tensor '{name}' shape {Format(shape)} of {dtype} is too large: its byte count overflows 64 bits");
        if (end - begin != byteCount)
            throw Error(source, $"tensor '{name}' data_offsets [{begin}, {end}] hold {end - begin} bytes but shape {Format(shape)} of {dtype} needs {byteCount}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);

        KdException Missing(string field) => Error(source, $"tensor '{name}' is missing \"{field}\"");
    }

    /// <summary>A JSON array of integers that fit a long (what Python reads as usize, less the sign check,
    /// which callers make with a better message).</summary>
    static long[] Integers(string source, string what, JsonElement array)
    {
        if (array.ValueKind != JsonValueKind.Array)
            throw Error(source, $"{what} is {Describe(array)}, not an array");
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out values[i]))
                throw Error(source, $"{what} holds {item.GetRawText()}, which is not an integer");
            i++;
        }
        return values;
    }

    /// <summary>Orders the tensors by their offsets and checks that they tile the data section exactly,
    /// as Python's safetensors requires: from 0, no gap, no overlap, nothing after the last one.</summary>
    static SafeTensorInfo[] CheckLayout(string source, List<SafeTensorInfo> tensors, long dataLength)
    {
        var ordered = tensors.OrderBy(t => t.Begin).ThenBy(t => t.End).ThenBy(t => t.Name, StringComparer.Ordinal).ToArray();
        long expected = 0;
        SafeTensorInfo? previous = null;
        foreach (var tensor in ordered)
        {
            if (tensor.Begin != expected)
                throw Error(source, previous is null
                    ? $"offsets of '{tensor.Name}' {Offsets(tensor)} leave a gap at the start of the data section"
                    : $"offsets of '{previous.Name}' {Offsets(previous)} and '{tensor.Name}' {Offsets(tensor)} {(tensor.Begin < expected ? "overlap" : "leave a gap")}");
            expected = tensor.End;
            previous = tensor;
        }
        if (expected > dataLength)
            throw Error(source, $"truncated: the data section ends at byte {dataLength} but tensors need {expected}");
        if (expected < dataLength)
            throw Error(source, $"{dataLength - expected} bytes after the last tensor");
        return ordered;
    }

    /// <summary>product(shape) * elementSize, or -1 when that overflows a long. A zero dimension makes it 0
    /// whatever the others are.</summary>
    static long ByteCount(long[] shape, int elementSize)
    {
        if (shape.Contains(0)) return 0;
        long product = elementSize;
        foreach (long dim in shape)
        {
            if (product > long.MaxValue / dim) return -1;
            product *= dim;
        }
        return product;
    }

    ReadOnlySpan<byte> Data(SafeTensorInfo info) =>
        _bytes.AsSpan(_dataStart + (int)info.Begin, (int)(info.End - info.Begin));

    long Integral(SafeTensorInfo info, int index, double value) =>
        // 2^63 itself is out of range; -2^63 is in.
        double.IsInteger(value) && value >= -9223372036854775808.0 && value < 9223372036854775808.0
            ? (long)value
            : throw Error(_source, $"tensor '{info.Name}' of {info.DType} holds {value} at index {index}, which is not an integer");

    /// <summary>JsonDocument defers unescaping; a "\ud800" escape only fails here, with an InvalidOperationException.</summary>
    static string NameOf(string source, JsonProperty property)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException e)
        {
            throw Error(source, $"header holds a key that is not valid Unicode ({e.Message})");
        }
    }

    /// <summary>A string value, with the same deferred-unescaping failure turned into a KdException.</summary>
    static string StringOf(string source, JsonElement element)
    {
        try
        {
            return element.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw Error(source, $"header holds a string that is not valid Unicode ({e.Message})");
        }
    }

    static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    static string Format(long[] values) => $"[{string.Join(',', values)}]";

    static string Offsets(SafeTensorInfo info) => $"[{info.Begin}, {info.End}]";

    static KdException Error(string source, string what) => new($"{source}: {what}");
}
