// Reading sysctls, in our own network namespace (plain file reads) or in a named one (one `grep` run there: the
// netns of the process that opens the file decides whose values they are).
import { readFile } from 'node:fs/promises';
import { inNetns, runCommand } from '../command.ts';

/** Path -> trimmed value for each file that could be read; missing files are absent. */
export async function readSysctls(paths: readonly string[], o: { netns?: string; ipPath?: string } = {}): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (o.netns === undefined) {
    for (const path of paths) {
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (text !== undefined) out.set(path, text.trim());
    }
    return out;
  }
  // `grep -H .` prints path:value for every file it can read and skips the others (exit code 2 then).
  const [cmd, args] = inNetns(o.netns, 'grep', ['-H', '.', ...paths], o.ipPath);
  const r = await runCommand(cmd, args);
  for (const line of r.stdout.split('\n')) {
    const i = line.lastIndexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}
