using System;
using System.Collections.Immutable;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// What the wrapped analyzers' callbacks cost on the thread that runs them: CPU time of that thread
/// (<c>CLOCK_THREAD_CPUTIME_ID</c>), which time spent waiting for a core under load does not inflate,
/// unlike the driver's wall-clock telemetry, and the bytes the thread allocated in them, which the load
/// does not change at all. With workstation non-concurrent GC a collection runs on the thread whose
/// allocation triggered it, so collections the callbacks cause are in their CPU time.
/// </summary>
internal sealed class CallbackMeter
{
    private long cpuNanoseconds;
    private long allocatedBytes;
    private long callbacks;
    private long gcPauseTicks;
    private long gen2Collections;

    public TimeSpan Cpu => TimeSpan.FromTicks(Interlocked.Read(ref cpuNanoseconds) / 100);

    public long AllocatedBytes => Interlocked.Read(ref allocatedBytes);

    public long Callbacks => Interlocked.Read(ref callbacks);

    /// <summary>
    /// The collector's pauses that fell inside the callbacks (process-wide pauses: on one analysis
    /// thread they are the ones its allocation caused, or that the compiler's thread caused meanwhile).
    /// </summary>
    public TimeSpan GcPause => TimeSpan.FromTicks(Interlocked.Read(ref gcPauseTicks));

    /// <summary>Full collections that started inside the callbacks: each marks the whole live heap, the compilation's included.</summary>
    public long Gen2Collections => Interlocked.Read(ref gen2Collections);

    /// <summary>The analyzers, each wrapped so that its callbacks are measured by this meter.</summary>
    public ImmutableArray<DiagnosticAnalyzer> Wrap(ImmutableArray<DiagnosticAnalyzer> analyzers) =>
        analyzers.Select(a => (DiagnosticAnalyzer)new MeteredAnalyzer(a, this)).ToImmutableArray();

    private void Measure<T>(Action<T> action, T argument)
    {
        long cpuBefore = ThreadCpuNanoseconds();
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        TimeSpan pauseBefore = GC.GetTotalPauseDuration();
        int gen2Before = GC.CollectionCount(2);
        try
        {
            action(argument);
        }
        finally
        {
            Interlocked.Add(ref allocatedBytes, GC.GetAllocatedBytesForCurrentThread() - allocatedBefore);
            Interlocked.Add(ref cpuNanoseconds, ThreadCpuNanoseconds() - cpuBefore);
            Interlocked.Increment(ref callbacks);
            Interlocked.Add(ref gcPauseTicks, (GC.GetTotalPauseDuration() - pauseBefore).Ticks);
            Interlocked.Add(ref gen2Collections, GC.CollectionCount(2) - gen2Before);
        }
    }

    private Action<T> Metered<T>(Action<T> action) => argument => Measure(action, argument);

    private const int ClockThreadCpuTime = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private static long ThreadCpuNanoseconds()
    {
        if (ClockGetTime(ClockThreadCpuTime, out TimeSpec time) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: the callback meter needs Linux");
        return time.Seconds * 1_000_000_000 + time.Nanoseconds;
    }

    /// <summary>
    /// An analyzer whose registrations are passed on with each action measured. Only the registrations
    /// KmemGuard makes are supported: any other throws, so that a change in how KmemGuard registers
    /// cannot leave work unmeasured without anyone noticing.
    /// </summary>
    // The wrapped analyzer enables concurrency and configures generated code itself, through the context passed on.
#pragma warning disable RS1025, RS1026
    private sealed class MeteredAnalyzer(DiagnosticAnalyzer inner, CallbackMeter meter) : DiagnosticAnalyzer
    {
        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => inner.SupportedDiagnostics;

        public override void Initialize(AnalysisContext context) => inner.Initialize(new MeteredAnalysisContext(context, meter));
    }
#pragma warning restore RS1025, RS1026

    private static NotSupportedException Unmetered(string registration) =>
        new($"The callback meter does not measure {registration}: KmemGuard now registers it, so CallbackMeter must learn it too.");

    private sealed class MeteredAnalysisContext(AnalysisContext inner, CallbackMeter meter) : AnalysisContext
    {
        public override void EnableConcurrentExecution() => inner.EnableConcurrentExecution();

        public override void ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags analysisMode) => inner.ConfigureGeneratedCodeAnalysis(analysisMode);

        public override void RegisterCompilationStartAction(Action<CompilationStartAnalysisContext> action) =>
            inner.RegisterCompilationStartAction(meter.Metered<CompilationStartAnalysisContext>(start => action(new MeteredCompilationStartContext(start, meter))));

        public override void RegisterCompilationAction(Action<CompilationAnalysisContext> action) => throw Unmetered(nameof(RegisterCompilationAction));

        public override void RegisterSemanticModelAction(Action<SemanticModelAnalysisContext> action) => throw Unmetered(nameof(RegisterSemanticModelAction));

        public override void RegisterSymbolAction(Action<SymbolAnalysisContext> action, ImmutableArray<SymbolKind> symbolKinds) => throw Unmetered(nameof(RegisterSymbolAction));

        public override void RegisterCodeBlockStartAction<TLanguageKindEnum>(Action<CodeBlockStartAnalysisContext<TLanguageKindEnum>> action) => throw Unmetered(nameof(RegisterCodeBlockStartAction));

        public override void RegisterCodeBlockAction(Action<CodeBlockAnalysisContext> action) => throw Unmetered(nameof(RegisterCodeBlockAction));

        public override void RegisterSyntaxTreeAction(Action<SyntaxTreeAnalysisContext> action) => throw Unmetered(nameof(RegisterSyntaxTreeAction));

        public override void RegisterSyntaxNodeAction<TLanguageKindEnum>(Action<SyntaxNodeAnalysisContext> action, ImmutableArray<TLanguageKindEnum> syntaxKinds) => throw Unmetered(nameof(RegisterSyntaxNodeAction));

        public override void RegisterOperationAction(Action<OperationAnalysisContext> action, ImmutableArray<OperationKind> operationKinds) => throw Unmetered(nameof(RegisterOperationAction));

        public override void RegisterOperationBlockStartAction(Action<OperationBlockStartAnalysisContext> action) => throw Unmetered(nameof(RegisterOperationBlockStartAction));

        public override void RegisterOperationBlockAction(Action<OperationBlockAnalysisContext> action) => throw Unmetered(nameof(RegisterOperationBlockAction));
    }

    // Passing registrations on to the real start context is the point; the rule expects a start context to register them itself.
#pragma warning disable RS1012
    private sealed class MeteredCompilationStartContext(CompilationStartAnalysisContext inner, CallbackMeter meter)
        : CompilationStartAnalysisContext(inner.Compilation, inner.Options, inner.CancellationToken)
    {
        public override void RegisterOperationBlockAction(Action<OperationBlockAnalysisContext> action) =>
            inner.RegisterOperationBlockAction(meter.Metered(action));


        public override void RegisterCompilationEndAction(Action<CompilationAnalysisContext> action) => throw Unmetered(nameof(RegisterCompilationEndAction));

        public override void RegisterSemanticModelAction(Action<SemanticModelAnalysisContext> action) => throw Unmetered(nameof(RegisterSemanticModelAction));

        public override void RegisterSymbolAction(Action<SymbolAnalysisContext> action, ImmutableArray<SymbolKind> symbolKinds) => throw Unmetered(nameof(RegisterSymbolAction));

        public override void RegisterSymbolStartAction(Action<SymbolStartAnalysisContext> action, SymbolKind symbolKind) => throw Unmetered(nameof(RegisterSymbolStartAction));

        public override void RegisterCodeBlockStartAction<TLanguageKindEnum>(Action<CodeBlockStartAnalysisContext<TLanguageKindEnum>> action) => throw Unmetered(nameof(RegisterCodeBlockStartAction));

        public override void RegisterCodeBlockAction(Action<CodeBlockAnalysisContext> action) => throw Unmetered(nameof(RegisterCodeBlockAction));

        public override void RegisterSyntaxTreeAction(Action<SyntaxTreeAnalysisContext> action) => throw Unmetered(nameof(RegisterSyntaxTreeAction));

        public override void RegisterSyntaxNodeAction<TLanguageKindEnum>(Action<SyntaxNodeAnalysisContext> action, ImmutableArray<TLanguageKindEnum> syntaxKinds) => throw Unmetered(nameof(RegisterSyntaxNodeAction));

        public override void RegisterOperationAction(Action<OperationAnalysisContext> action, ImmutableArray<OperationKind> operationKinds) => throw Unmetered(nameof(RegisterOperationAction));

        public override void RegisterOperationBlockStartAction(Action<OperationBlockStartAnalysisContext> action) => throw Unmetered(nameof(RegisterOperationBlockStartAction));
    }
#pragma warning restore RS1012
}
