// Placeholder until the command lands; replaced by its implementation.
import type { CliIO } from '../io.ts';
import { EXIT_USAGE } from '../io.ts';

export async function run(_argv: string[], io: CliIO): Promise<number> {
  io.stderr.write('corvid sync: not available in this build yet\n');
  return EXIT_USAGE;
}
