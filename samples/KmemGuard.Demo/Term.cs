using System;

namespace KmemGuard.Demo;

/// <summary>ANSI colours on a terminal only: never when output is redirected, never with NO_COLOR set.</summary>
internal static class Term
{
    public static readonly bool Color =
        !Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));

    public static string Bold(string s) => Wrap("1", s);
    public static string Dim(string s) => Wrap("2", s);
    public static string Red(string s) => Wrap("1;31", s);
    public static string Green(string s) => Wrap("32", s);
    public static string Yellow(string s) => Wrap("33", s);
    public static string Cyan(string s) => Wrap("36", s);

    private static string Wrap(string code, string s) => Color ? $"\u001b[{code}m{s}\u001b[0m" : s;

    public static void Heading(string title)
    {
        Console.WriteLine();
        Console.WriteLine(Bold(Cyan("== " + title + " " + new string('=', Math.Max(0, 72 - title.Length)))));
    }
}
