// Git source: poll the followed ref every interval (and on refresh(), e.g. a webhook); read `path` of the commit;
// verify the commit signature when asked. One fetch at a time; a refresh during a fetch runs one more afterwards.

import { GitRepo, type GitRef, type SignatureVerification } from '../adapters/git/repo.ts';
import type { Logger } from './log.ts';
import { REJECT, type Artifact, type TopologySource } from './source.ts';

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
  private fetching: Promise<void> | undefined;
  private again = false;
  private stopped = false;
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
    await this.fetching;
  }

  private fetchNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.fetching) {
      this.again = true;
      return this.fetching;
    }
    clearTimeout(this.timer);
    this.fetching = (async () => {
      do {
        this.again = false;
        await this.fetchOnce();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.fetching = undefined;
      if (!this.stopped) {
        this.timer = setTimeout(() => void this.fetchNow(), this.o.intervalMs);
        this.timer.unref();
      }
    });
    return this.fetching;
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
      const text = await this.repo.readFile(commit.sha, this.o.path);
      if (text === undefined) {
        this.set({
          ok: false,
          revision: commit.revision,
          reason: REJECT.artifactFailed,
          message: `${this.o.path}: no such file in ${commit.revision}`,
          transient: false,
        });
      } else {
        const verification = this.o.verify ? await this.repo.verifyCommit(commit.sha, this.o.verify) : undefined;
        this.set({ ok: true, revision: commit.revision, file: this.o.path, text, ...(verification ? { verification } : {}) });
      }
      this.lastSha = commit.sha;
      this.o.logger.info('git revision fetched', { revision: commit.revision });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.set({ ok: false, revision: commit.revision, reason: REJECT.fetchFailed, message, transient: true });
    }
  }
}
