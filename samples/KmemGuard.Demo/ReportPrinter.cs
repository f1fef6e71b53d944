using System;

namespace KmemGuard.Demo;

/// <summary>Prints a checker report as a terminal shows a kernel log: the title stands out, the stacks recede.</summary>
internal static class ReportPrinter
{
    /// <summary>Enough for a KASAN report's access, stacks, object and shadow; --full prints everything.</summary>
    public const int DefaultLines = 30;

    public static void Print(KernelBugReport report, int maxLines)
    {
        string[] lines = report.Text.TrimEnd('\n').Split('\n');
        int shown = Math.Min(lines.Length, maxLines);
        for (int i = 0; i < shown; i++) Console.WriteLine("  " + Paint(lines[i].TrimEnd('\r'), i == 0));
        if (shown < lines.Length) Console.WriteLine(Term.Dim($"  … {lines.Length - shown} more lines"));
    }

    private static string Paint(string line, bool title)
    {
        if (title || line.StartsWith("BUG", StringComparison.Ordinal) || line.StartsWith("WARNING", StringComparison.Ordinal)) return Term.Red(line);
        string trimmed = line.TrimStart();
        if (trimmed.StartsWith("Allocated by", StringComparison.Ordinal) || trimmed.StartsWith("Freed by", StringComparison.Ordinal)
            || trimmed.StartsWith("Read of", StringComparison.Ordinal) || trimmed.StartsWith("Write of", StringComparison.Ordinal)
            || trimmed.StartsWith("The buggy address", StringComparison.Ordinal) || trimmed.StartsWith("unreferenced object", StringComparison.Ordinal))
            return Term.Yellow(line);
        if (trimmed.StartsWith("at ", StringComparison.Ordinal) || trimmed.StartsWith("[<", StringComparison.Ordinal)
            || trimmed.StartsWith('>') || trimmed.StartsWith("0x", StringComparison.Ordinal) || trimmed.StartsWith("ffff", StringComparison.Ordinal))
            return Term.Dim(line);
        return line;
    }
}
