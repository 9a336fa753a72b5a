// What a CLI command may touch of the process: passed in so tests can capture it.

export interface CliWritable {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface CliIO {
  stdout: CliWritable;
  stderr: CliWritable;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** A command's entry point; resolves to the process exit code. */
export type CommandRun = (argv: string[], io: CliIO) => Promise<number>;

/** Exit codes shared by every command. */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;

/** Colour only on a TTY, and never when NO_COLOR is set. */
export function useColour(stream: CliWritable, env: NodeJS.ProcessEnv): boolean {
  return Boolean(stream.isTTY) && env.NO_COLOR === undefined && env.TERM !== 'dumb';
}
