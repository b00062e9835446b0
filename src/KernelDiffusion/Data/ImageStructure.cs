using System.Buffers.Binary;
using System.Text;

namespace KernelDiffusion.Data;

/// <summary>Walks the chunks of a PNG or the segments of a JPEG up to their end marker. ImageSharp decodes a file
/// cut short inside its pixel data without complaint, filling the rest with black or grey; this finds such files.</summary>
static class ImageStructure
{
    /// <summary>Null when the PNG's chunks are complete up to IEND, else what is wrong. Bytes after IEND are
    /// ignored, as libpng does.</summary>
    public static string? PngProblem(byte[] bytes)
    {
        long pos = 8; // the signature, which format detection has checked
        while (true)
        {
            if (pos + 12 > bytes.Length) return $"truncated: it ends at byte {bytes.Length} before its IEND chunk";
            long length = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)pos));
            string type = Encoding.ASCII.GetString(bytes, (int)pos + 4, 4);
            if (pos + 12 + length > bytes.Length)
                return $"truncated: its {type} chunk at byte {pos} needs {length} bytes of data but the file ends at byte {bytes.Length}";
            pos += 12 + length;
            if (type == "IEND") return null;
        }
    }

    /// <summary>Null when the JPEG's segments and entropy-coded scans run up to an EOI marker, else what is wrong.
    /// Bytes after EOI are ignored: some cameras append data there.</summary>
    public static string? JpegProblem(byte[] bytes)
    {
        int pos = 2; // the SOI marker, which format detection has checked
        while (true)
        {
            if (pos >= bytes.Length) return $"truncated: it ends at byte {bytes.Length} before its EOI marker";
            if (bytes[pos] != 0xFF) return $"corrupt: byte {pos} should start a marker";
            while (pos < bytes.Length && bytes[pos] == 0xFF) pos++; // a marker may be preceded by fill bytes 0xFF
            if (pos >= bytes.Length) return $"truncated: it ends at byte {bytes.Length} inside a marker";
            byte marker = bytes[pos++];
            if (marker == 0xD9) return null; // EOI
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) continue; // markers without a length
            if (pos + 2 > bytes.Length) return $"truncated: it ends at byte {bytes.Length} inside a marker";
            int length = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(pos));
            if (length < 2 || pos + length > bytes.Length)
                return $"truncated: its 0xFF{marker:X2} segment at byte {pos - 2} needs {length} bytes but the file ends at byte {bytes.Length}";
            pos += length;
            if (marker != 0xDA) continue;
            // After a start-of-scan segment comes entropy-coded data, in which 0xFF is followed by 0x00 (a stuffed
            // byte) or a restart marker; any other byte after 0xFF starts the next marker.
            while (pos + 1 < bytes.Length && !(bytes[pos] == 0xFF && bytes[pos + 1] != 0x00 && bytes[pos + 1] is < 0xD0 or > 0xD7))
                pos++;
            if (pos + 1 >= bytes.Length) return $"truncated: it ends at byte {bytes.Length} inside the scan data";
        }
    }
}
