// File source: a topology file mounted from a ConfigMap (or any path). The kubelet updates a ConfigMap volume by
// swapping the `..data` symlink, which never touches the file's own path; so the whole directory is watched and the
// file is re-read on any event there (and every interval as a fallback). A new revision is a new content hash.

import { createHash } from 'node:crypto';
import { InputFileError, inputFileProblem, readBoundedFile } from '../adapters/fs/bounded.ts';
import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../shell/log.ts';
import { REJECT, type Artifact } from '../reconcile/artifact.ts';
import type { TopologySource } from './source.ts';

export interface FileSourceOptions {
  path: string;
  intervalMs: number;
  /** Quiet period after a file event before reading (a swap is several events). Default 50 ms. */
  settleMs?: number;
  logger: Logger;
}

export function contentRevision(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

export class FileSource implements TopologySource {
  readonly kind = 'file' as const;
  private readonly o: FileSourceOptions;
  private current: Artifact | undefined;
  private watcher: FSWatcher | undefined;
  private settle: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private changed: () => void = () => {};
  private stopped = false;
  private reading: Promise<void> = Promise.resolve();

  constructor(o: FileSourceOptions) {
    this.o = o;
  }

  async start(changed: () => void): Promise<void> {
    this.changed = changed;
    const dir = dirname(this.o.path);
    this.watcher = watch(dir, { ignoreInitial: true, depth: 0, followSymlinks: false, persistent: true });
    this.watcher.on('all', () => this.soon());
    this.watcher.on('error', (e) => this.o.logger.warn('file watch error', { error: e }));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.poll = setInterval(() => this.soon(), this.o.intervalMs);
    this.poll.unref();
    await this.readNow();
  }

  latest(): Artifact | undefined {
    return this.current;
  }

  refresh(): void {
    this.soon();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.settle);
    clearInterval(this.poll);
    await this.watcher?.close();
    await this.reading;
  }

  private soon(): void {
    if (this.stopped) return;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.readNow(), this.o.settleMs ?? 50);
  }

  private readNow(): Promise<void> {
    this.reading = this.reading.then(() => this.readOnce());
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    if (this.stopped) return;
    let next: Artifact;
    try {
      const text = await readBoundedFile(this.o.path);
      next = { ok: true, revision: contentRevision(text), file: basename(this.o.path), text };
    } catch (e) {
      next = { ok: false, reason: REJECT.fetchFailed, message: await fileProblem(this.o.path, e), transient: true };
    }
    const same =
      this.current !== undefined &&
      this.current.ok === next.ok &&
      (next.ok ? (this.current as typeof next).revision === next.revision : JSON.stringify(this.current) === JSON.stringify(next));
    if (same) return;
    this.current = next;
    if (next.ok) this.o.logger.info('topology file changed', { revision: next.revision });
    this.changed();
  }
}

/**
 * Why the file was not read, and what to do. The path may be a link (a ConfigMap volume's file is one, into `..data`)
 * and is followed; a link whose target is gone, and a directory, are named as such.
 */
export async function fileProblem(path: string, e: unknown): Promise<string> {
  const code = (e as NodeJS.ErrnoException).code;
  if ((code === 'ENOENT' || code === 'ELOOP') && (await lstat(path).then((st) => st.isSymbolicLink(), () => false))) {
    return `${path} is a symbolic link ${code === 'ELOOP' ? 'in a loop of links' : 'whose target does not exist'}; point --file at the topology file, or at a link to it`;
  }
  if (e instanceof InputFileError && (await stat(path).then((st) => st.isDirectory(), () => false))) {
    const yaml = (await readdir(path).catch(() => [] as string[])).filter((f) => /^[\w@+-][\w.@+-]{0,200}\.ya?ml$/.test(f)).sort();
    const example = yaml.length === 0 ? ' (it holds no .yaml or .yml file)' : `, e.g. ${yaml.slice(0, 3).map((f) => join(path, f)).join(' or ')}`;
    return `${path} is a directory, not a regular file; point --file at a YAML file in it${example}`;
  }
  return `${path} ${inputFileProblem(e)}`;
}
