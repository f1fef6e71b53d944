using System;
using System.Text;

namespace KmemGuard;

/// <summary>A leak in kmemleak's format (print_unreferenced in mm/kmemleak.c).</summary>
internal static class KmemleakReport
{
    private const int HexRowSize = 16;
    private const int HexMaxLines = 2;

    public static string Format(Machine machine, KmemleakObject leak)
    {
        var text = new StringBuilder();
        text.Append("unreferenced object 0x").Append(leak.Start.ToString("x16")).Append(" (size ").Append(leak.Size).Append("):\n");
        text.Append("  comm \"").Append(leak.Alloc.Comm).Append("\", pid ").Append(leak.Alloc.Pid).Append(", jiffies ").Append(leak.Alloc.Jiffies).Append('\n');
        int dumped = (int)Math.Min(leak.Size, (ulong)(HexRowSize * HexMaxLines));
        byte[] bytes = RawMemory.ReadBytes(machine, leak.Start, dumped);
        text.Append("  hex dump (first ").Append(dumped).Append(" bytes):\n");
        AppendHexDump(text, bytes);
        text.Append("  backtrace:\n");
        AppendBacktrace(text, leak.Alloc);
        return text.ToString();
    }

    /// <summary>seq_hex_dump with 16 bytes a row, groups of 1, and the ASCII column (hex_dump_to_buffer's layout).</summary>
    internal static void AppendHexDump(StringBuilder text, ReadOnlySpan<byte> bytes)
    {
        const int asciiColumn = HexRowSize * 2 + HexRowSize + 1;
        for (int row = 0; row < bytes.Length; row += HexRowSize)
        {
            ReadOnlySpan<byte> line = bytes.Slice(row, Math.Min(HexRowSize, bytes.Length - row));
            int start = text.Length;
            text.Append("    ");
            for (int i = 0; i < line.Length; i++)
            {
                if (i > 0) text.Append(' ');
                text.Append(line[i].ToString("x2"));
            }
            text.Append(' ', asciiColumn - (text.Length - start - 4));
            foreach (byte b in line) text.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
            text.Append('\n');
        }
    }

    /// <summary>
    /// The allocation's stack, one frame a line as kmemleak prints it. The "address" of a C# frame
    /// is a stable hash of it, standing where the kernel prints a hashed return address.
    /// </summary>
    private static void AppendBacktrace(StringBuilder text, Track alloc)
    {
        string stack = alloc.Site.IsKnown ? alloc.StackText : "";
        bool any = false;
        foreach (string frame in stack.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            AppendFrame(text, frame);
            any = true;
        }
        if (!any) AppendFrame(text, alloc.Site.ToString());
    }

    private static void AppendFrame(StringBuilder text, string frame) =>
        text.Append("    [<").Append(StableHash(frame).ToString("x16")).Append(">] ").Append(frame).Append('\n');

    /// <summary>FNV-1a: the same frame always shows the same number, across runs.</summary>
    private static ulong StableHash(string value)
    {
        ulong hash = 0xcbf29ce484222325;
        foreach (char c in value) hash = (hash ^ c) * 0x100000001b3;
        return hash;
    }
}
