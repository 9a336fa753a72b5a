// Facts about the test host and a last-resort cleanup shared by every test-support module.

import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && isExecutable(join(d, cmd)));
}

/** SIGKILL a child by PID if it still runs (synchronous: usable from an exit hook). */
export function killSync(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

const exitCleanups = new Set<() => void>();
let hooksInstalled = false;

function runExitCleanups(): void {
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // keep cleaning up the rest
    }
  }
}

/**
 * Runs `cleanup` (synchronous) when the test process exits or gets SIGINT/SIGTERM/SIGHUP without its after hooks
 * having run, so no namespace, process or temp dir outlives a crashed test. Registering the same function twice is a
 * no-op.
 */
export function onProcessExit(cleanup: () => void): void {
  exitCleanups.add(cleanup);
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', runExitCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runExitCleanups();
      process.removeListener(sig, onSignal);
      // Re-raise so the default action (exit) still happens.
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM a child, SIGKILL after graceMs; resolves when it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.pid === undefined || exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!exited(child)) child.kill('SIGKILL');
  }, graceMs);
  try {
    await gone;
  } finally {
    clearTimeout(timer);
  }
}
