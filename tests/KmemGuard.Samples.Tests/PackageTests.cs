using System;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Reflection;
using Xunit;

namespace KmemGuard.Samples.Tests;

/// <summary>
/// The package as an outside user meets it: pack, reference the .nupkg from a local folder in a
/// fresh console project, build code with a seeded bug (the KMG warning shows, with no using
/// directive: the package's props add them), run it (the runtime report shows), and opt out of the
/// global usings (the same code no longer compiles). Slow (a minute or so): one test.
/// </summary>
public class PackageTests
{
    private const string Program = """
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, OnBug = BugAction.Report });
        var lk = new spinlock_t();
        spin_lock_init(lk);
        Refill(lk);
        foreach (KernelBugReport r in m.Reports) System.Console.WriteLine($"REPORT {r.Kind}: {r.Title}");

        static void Refill(spinlock_t lk)
        {
            spin_lock(lk);
            KPtr p = kmalloc(128, GFP_KERNEL); // the seeded bug: a sleeping allocation under a spinlock
            spin_unlock(lk);
            kfree(p);
        }
        """;

    [Fact]
    [Trait("Category", "Package")]
    public void The_packed_nupkg_brings_the_analyzers_the_runtime_and_the_global_usings()
    {
        string root = RepoRoot.Find();
        string work = Path.Combine(Path.GetTempPath(), "kmemguard-package-" + Guid.NewGuid().ToString("N")[..12]);
        string feed = Path.Combine(work, "feed"), app = Path.Combine(work, "app");
        // A version no registry has, so restore can only take this build's package.
        string version = "0.0.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmss");
        Directory.CreateDirectory(app);
        try
        {
            string configuration = typeof(PackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "Configuration").Value ?? "Debug";
            Dotnet.Run(root, $"pack pack/KmemGuard.Package.csproj -c {configuration} -o \"{feed}\" -p:PackageVersion={version}").AssertSucceeded("dotnet pack");

            string nupkg = Path.Combine(feed, $"KmemGuard.{version}.nupkg");
            using (ZipArchive zip = ZipFile.OpenRead(nupkg))
            {
                var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
                foreach (string expected in new[]
                {
                    "lib/net10.0/KmemGuard.Runtime.dll", "analyzers/dotnet/cs/KmemGuard.Analyzers.dll",
                    "analyzers/dotnet/cs/KmemGuard.CodeFixes.dll", "build/KmemGuard.props", "buildTransitive/KmemGuard.props",
                })
                    Assert.Contains(expected, entries);
            }

            File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <RestoreAdditionalProjectSources>{feed}</RestoreAdditionalProjectSources>
                    <RestorePackagesPath>{Path.Combine(work, "packages")}</RestorePackagesPath>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="KmemGuard" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), Program);

            DotnetRun build = Dotnet.Run(app, "build -nologo");
            build.AssertSucceeded("dotnet build of the consumer");
            Assert.Matches(@"Program\.cs\(\d+,\d+\): warning KMG0001", build.Output);

            DotnetRun run = Dotnet.Run(app, "run --no-build");
            run.AssertSucceeded("dotnet run of the consumer");
            Assert.Contains("REPORT SleepInAtomic: BUG: sleeping function called from invalid context", run.Output);

            DotnetRun optedOut = Dotnet.Run(app, "build -nologo -p:KmemGuardGlobalUsing=false");
            Assert.NotEqual(0, optedOut.ExitCode);
            Assert.Contains("error CS0103", optedOut.Output); // kmalloc and friends are no longer in scope
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
