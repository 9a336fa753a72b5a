// Git source: poll the followed ref every interval (and on refresh(), e.g. a webhook); read `path` of the commit;
// verify the commit signature when asked. One fetch at a time; a refresh during a fetch runs one more afterwards.

import { MAX_INPUT_BYTES } from '../adapters/fs/bounded.ts';
import { GitRepo, type GitRef, type RepoPath, type SignatureVerification } from '../adapters/git/repo.ts';
import type { Logger } from '../shell/log.ts';
import { REJECT, type Artifact } from '../reconcile/artifact.ts';
import type { TopologySource } from './source.ts';
import { SerialRunner } from '../shell/serial.ts';

export interface GitSourceOptions {
  url: string;
  ref: GitRef;
  /** File in the repository, e.g. `clusters/edge/topology.yaml`. */
  path: string;
  cacheDir: string;
  intervalMs: number;
  verify?: SignatureVerification;
  /** A git command that makes no progress for this long is killed (GitRepo's default otherwise). */
  timeoutMs?: number;
  logger: Logger;
}

export class GitSource implements TopologySource {
  readonly kind = 'git' as const;
  private readonly o: GitSourceOptions;
  private readonly repo: GitRepo;
  private current: Artifact | undefined;
  private lastSha: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly fetches = new SerialRunner(() => this.fetchOnce(), {
    stopped: () => this.stopped,
    // The next periodic fetch, an interval after the last one of a burst.
    settled: () => {
      if (this.stopped) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.fetchNow(), this.o.intervalMs);
      this.timer.unref();
    },
  });
  private changed: () => void = () => {};

  constructor(o: GitSourceOptions) {
    this.o = o;
    this.repo = new GitRepo({ url: o.url, dir: o.cacheDir, ref: o.ref, ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) });
  }

  async start(changed: () => void): Promise<void> {
    this.changed = changed;
    await this.fetchNow();
  }

  latest(): Artifact | undefined {
    return this.current;
  }

  refresh(): void {
    void this.fetchNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.repo.close();
    await this.fetches.idle();
  }

  private fetchNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    clearTimeout(this.timer);
    return this.fetches.run();
  }

  private set(a: Artifact): void {
    const before = JSON.stringify(this.current);
    this.current = a;
    if (JSON.stringify(a) !== before) this.changed();
  }

  private async fetchOnce(): Promise<void> {
    let commit;
    try {
      commit = await this.repo.fetch();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.o.logger.warn('git fetch failed', { error: message });
      // The last good artifact keeps its content; the error is what status reports until a fetch works again.
      this.set({ ok: false, reason: REJECT.fetchFailed, message, transient: true });
      return;
    }
    if (commit.sha === this.lastSha && this.current?.ok) return;
    try {
      const found = await this.repo.readPath(commit.sha, this.o.path, MAX_INPUT_BYTES);
      if (found.kind !== 'file') {
        this.set({ ok: false, revision: commit.revision, reason: REJECT.artifactFailed, message: gitPathProblem(this.o.path, commit.revision, found), transient: false });
      } else {
        const verification = this.o.verify ? await this.repo.verifyCommit(commit.sha, this.o.verify) : undefined;
        this.set({ ok: true, revision: commit.revision, file: this.o.path, text: found.text, ...(verification ? { verification } : {}) });
      }
      this.lastSha = commit.sha;
      this.o.logger.info('git revision fetched', { revision: commit.revision });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.set({ ok: false, revision: commit.revision, reason: REJECT.fetchFailed, message, transient: true });
    }
  }
}

/** Names from the repository quoted back only when they are plain (no control characters, quotes or spaces). */
const PLAIN_PATH = /^[\w.@+/-]{1,200}$/;

/** Why `path` of a commit is not a topology file, and what to do. */
export function gitPathProblem(path: string, revision: string, found: Exclude<RepoPath, { kind: 'file' }>): string {
  switch (found.kind) {
    case 'directory': {
      const yaml = found.yaml.filter((f) => PLAIN_PATH.test(f));
      const example =
        yaml.length === 0
          ? ' (it holds no .yaml or .yml file of its own)'
          : `, e.g. ${yaml[0]}${yaml.length > 1 ? ` (also ${yaml.slice(1, 3).join(', ')}${yaml.length > 3 ? `, and ${yaml.length - 3} more` : ''})` : ''}`;
      return `${path} is a directory in ${revision}; point --git-path at a YAML file in it${example}`;
    }
    case 'symlink':
      return `${path} is a symbolic link in ${revision}; the sync reads files only, not links (a link could point outside the repository): point --git-path at the file itself`;
    case 'submodule':
      return `${path} is a submodule (a commit of another repository) in ${revision}; the sync reads files of this repository only: point --git-path at a YAML file of it`;
    case 'too-large':
      return `${path} is ${found.size} bytes in ${revision}, over the limit of ${MAX_INPUT_BYTES}`;
    case 'outside':
      return `${path}: a path with .. is not read; give --git-path relative to the repository's top, without ..`;
    case 'missing': {
      const b = found.blockedBy;
      if (b === undefined) return `${path}: no such file in ${revision}`;
      if (b.kind === 'file') return `${path}: no such file in ${revision}: ${b.path} is a file, not a directory`;
      const what = b.kind === 'symlink' ? 'a symbolic link, which the sync does not follow (a link could point outside the repository)' : 'a submodule, which the sync does not read';
      return `${path}: no such file in ${revision}: ${b.path} is ${what}; point --git-path at the file itself`;
    }
  }
}
