// The `corvid` command: dispatches to one module per subcommand, loaded on demand
// so `corvid validate` never pays for the Kubernetes client.

import type { CliIO, CommandRun } from './io.ts';
import { EXIT_USAGE } from './io.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: CommandRun }> }> = {
  validate: { summary: 'check topology files (schema and meaning)', load: () => import('./commands/validate.ts') },
  render: { summary: 'print the desired Gateway manifests', load: () => import('./commands/render.ts') },
  diff: { summary: 'show what a topology change would do to the live cluster', load: () => import('./commands/diff.ts') },
  graph: { summary: 'draw the network as SVG, DOT or Mermaid', load: () => import('./commands/graph.ts') },
  status: { summary: 'show pools, gateways and tunnels of the live cluster', load: () => import('./commands/status.ts') },
  import: { summary: "write a topology from a live cluster's Raven Gateways", load: () => import('./commands/import.ts') },
  sync: { summary: 'run the sync controller (topology in, Gateways out)', load: () => import('./commands/sync.ts') },
  agent: { summary: 'run the node agent (Gateways in, tunnels and routes out)', load: () => import('./commands/agent.ts') },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'Usage: corvid <command> [flags]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run "corvid <command> --help" for the flags and examples of a command.',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`corvid: unknown command "${name}"\n\n${usage()}`);
    return EXIT_USAGE;
  }
  const { run } = await command.load();
  return run(rest, io);
}
