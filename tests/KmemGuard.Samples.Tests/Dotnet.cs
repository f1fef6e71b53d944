using System;
using System.Diagnostics;
using System.Linq;
using System.Text;
using Xunit;

namespace KmemGuard.Samples.Tests;

/// <summary>What a dotnet command did: its arguments, exit code, and stdout and stderr together.</summary>
internal sealed record DotnetRun(string Arguments, int ExitCode, string Output)
{
    public void AssertSucceeded(string step) =>
        Assert.True(ExitCode == 0, $"{step} (dotnet {Arguments}) exited {ExitCode}:\n{Output}");
}

/// <summary>Runs the dotnet CLI as a user would, in a clean environment.</summary>
internal static class Dotnet
{
    public static DotnetRun Run(string directory, string arguments, int timeoutMinutes = 5)
    {
        // Builds get no MSBuild server or node reuse: nothing may outlive the test.
        bool build = !arguments.StartsWith("run", StringComparison.Ordinal) && !arguments.EndsWith(".dll\"", StringComparison.Ordinal);
        var psi = new ProcessStartInfo("dotnet", build ? arguments + " -nodeReuse:false" : arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The test host runs under `dotnet test`, whose MSBuild settings must not leak into a fresh build.
        foreach (string name in psi.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(name);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";

        using Process process = Process.Start(psi)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(timeoutMinutes)))
        {
            process.Kill(entireProcessTree: true);
            lock (output) return new DotnetRun(arguments, -1, output + $"\n(timed out after {timeoutMinutes} minutes)");
        }
        process.WaitForExit(); // drains the output events
        lock (output) return new DotnetRun(arguments, process.ExitCode, output.ToString());
    }
}
