namespace Understudy.Cli.Infrastructure;

/// <summary>
/// What `understudy` exits with, so scripts can tell a mistake in the command from a failure of the cluster.
/// Listed in `understudy --help` and the README's "Exit codes".
/// </summary>
internal static class ExitCodes
{
    /// <summary>Done; for chaos, bench and simulate: the verdict is valid.</summary>
    public const int Ok = 0;

    /// <summary>The command was right but it failed: no monitor answers, a child exited, a refusal, an invalid verdict.</summary>
    public const int Failure = 1;

    /// <summary>A mistake in the command itself (unknown verb, bad value, missing argument): nothing was started or changed.</summary>
    public const int Usage = 2;

    /// <summary>chaos: the scenario cannot run on this machine (e.g. partition without root).</summary>
    public const int CannotRunHere = 3;

    /// <summary>kv: the answer is no (a missing key, a compare-and-set that did not match, an increment that could not apply).</summary>
    public const int No = 4;

    /// <summary>Interrupted (Ctrl+C).</summary>
    public const int Interrupted = 130;

    public const string HelpText = "Exit codes: 0 done (or a valid verdict), 1 failed (no monitor answers, a child exited, a refusal, an invalid verdict), 2 mistake in the command (nothing started or changed), 3 chaos scenario not possible here, 4 kv: the answer is no (key not found, no match), 130 interrupted.";
}
