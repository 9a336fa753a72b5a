// Run one system command and collect its output, for the datapath adapters (iproute2, nftables, sysctl).
// A non-zero exit is a result, not an exception: each adapter knows which failures are normal (an absent table).
// Only a command that cannot be started at all rejects.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `cmd args`, feeding `input` to its standard input when given. */
export function runCommand(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', (e) => reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}`)));
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * The command line that runs `cmd` inside a named network namespace (`ip netns exec`), or `cmd` itself. Tests run
 * one agent per node namespace while the agent stays on the host; in a DaemonSet the agent runs in the host's own.
 */
export function inNetns(netns: string | undefined, cmd: string, args: readonly string[], ipPath = 'ip'): [string, string[]] {
  return netns === undefined ? [cmd, [...args]] : [ipPath, ['netns', 'exec', netns, cmd, ...args]];
}
