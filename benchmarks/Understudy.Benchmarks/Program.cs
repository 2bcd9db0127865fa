using BenchmarkDotNet.Running;

namespace Understudy.Benchmarks;

/// <summary>Runs the benchmarks chosen on the command line (--filter '*' for all; --list flat to list them).</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
