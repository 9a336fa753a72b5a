// A git repository followed by the sync: a bare mirror in a cache directory (no working tree), fetched on demand.
// One ref is followed (a branch, a tag or a fixed commit); files are read from the resolved commit with `git show`.
// Optional commit-signature verification with `git verify-commit` (SSH signers through gpg.ssh.allowedSignersFile, or
// a GnuPG home with the trusted keys).

import { execFile } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { VerifyResult } from '../../reconcile/artifact.ts';

export type GitRef = { branch: string } | { tag: string } | { commit: string };

export type SignatureVerification =
  | { mode: 'ssh'; allowedSignersFile: string }
  | { mode: 'gpg'; gnupgHome: string };

export interface GitRepoOptions {
  /** Clone URL (https, ssh, file or a local path). Never logged with its credentials. */
  url: string;
  /** Cache directory for the bare mirror; created when missing. */
  dir: string;
  ref: GitRef;
  /** Per-command timeout; default 60 s. */
  timeoutMs?: number;
}

export interface GitCommit {
  sha: string;
  /** `main@sha1:<40 hex>`, `v1.2@sha1:<40 hex>`, or `sha1:<40 hex>` for a fixed commit. */
  revision: string;
}

/** `https://user:token@host/x` -> `https://***@host/x`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}

/** The revision string of a ref at a commit. */
export function revisionOf(ref: GitRef, sha: string): string {
  if ('branch' in ref) return `${ref.branch}@sha1:${sha}`;
  if ('tag' in ref) return `${ref.tag}@sha1:${sha}`;
  return `sha1:${sha}`;
}

function describe(ref: GitRef): string {
  return 'branch' in ref ? `branch ${ref.branch}` : 'tag' in ref ? `tag ${ref.tag}` : `commit ${ref.commit}`;
}

function firstLines(text: string, n = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(0, n)
    .join('; ');
}

/** What a path is in a commit (RepoPath); links and submodules are never followed. */
export type RepoPath =
  | { kind: 'file'; text: string }
  | { kind: 'too-large'; size: number }
  | { kind: 'directory'; /** Its own .yaml and .yml files, sorted. */ yaml: string[] }
  | { kind: 'symlink' }
  | { kind: 'submodule' }
  /** A `..` in the path. */
  | { kind: 'outside' }
  /** No such path; `blockedBy` is a leading part of it that is not a directory. */
  | { kind: 'missing'; blockedBy?: { path: string; kind: 'file' | 'symlink' | 'submodule' } };

interface TreeEntry {
  mode: string;
  type: string;
  oid: string;
  /** -1 for a tree or a submodule. */
  size: number;
  path: string;
}

function entryKind(e: TreeEntry): 'file' | 'directory' | 'symlink' | 'submodule' {
  if (e.type === 'tree') return 'directory';
  if (e.type === 'commit') return 'submodule';
  return e.mode === '120000' ? 'symlink' : 'file';
}

export class GitRepo {
  readonly ref: GitRef;
  private readonly url: string;
  private readonly dir: string;
  private readonly timeoutMs: number;
  private ready = false;
  /** Aborted by close(): kills a git process in flight (a remote that never answers must not delay a shutdown). */
  private readonly aborted = new AbortController();

  constructor(opts: GitRepoOptions) {
    this.url = opts.url;
    this.dir = opts.dir;
    this.ref = opts.ref;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    if ('commit' in opts.ref && !/^[0-9a-f]{40}$/.test(opts.ref.commit)) {
      throw new Error(`commit must be 40 lowercase hex digits: ${opts.ref.commit}`);
    }
  }

  private git(env: Record<string, string> = {}): SimpleGit {
    return simpleGit({ baseDir: this.dir, timeout: { block: this.timeoutMs }, abort: this.aborted.signal }).env({ ...this.baseEnv(), ...env });
  }

  /** Kill any git process of this repository now and refuse further commands. */
  close(): void {
    this.aborted.abort();
  }

  /** A small, fixed environment: never an editor, pager or prompt (simple-git refuses some variables anyway). */
  private baseEnv(): Record<string, string> {
    const base: Record<string, string> = { GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };
    for (const k of ['PATH', 'HOME', 'SSH_AUTH_SOCK', 'GNUPGHOME']) {
      const v = process.env[k];
      if (v !== undefined) base[k] = v;
    }
    return base;
  }

  private async init(): Promise<void> {
    if (this.ready) return;
    await mkdir(this.dir, { recursive: true });
    const isRepo = await stat(`${this.dir}/HEAD`).then(
      () => true,
      () => false,
    );
    if (!isRepo) await this.git().raw(['init', '--bare', '--quiet']);
    const remotes = await this.git().raw(['remote']);
    if (remotes.split('\n').includes('origin')) await this.git().raw(['remote', 'set-url', 'origin', this.url]);
    else await this.git().raw(['remote', 'add', 'origin', this.url]);
    this.ready = true;
  }

  /** Fetch the followed ref and resolve it to a commit. Errors carry the redacted URL only. */
  async fetch(): Promise<GitCommit> {
    try {
      await this.init();
      const ref = this.ref;
      let local: string;
      if ('branch' in ref) {
        local = `refs/remotes/origin/${ref.branch}`;
        await this.git().raw(['fetch', '--quiet', '--force', '--no-tags', 'origin', `+refs/heads/${ref.branch}:${local}`]);
      } else if ('tag' in ref) {
        local = `refs/tags/${ref.tag}`;
        await this.git().raw(['fetch', '--quiet', '--force', '--no-tags', 'origin', `+refs/tags/${ref.tag}:${local}`]);
      } else {
        local = ref.commit;
        const have = await this.git()
          .raw(['cat-file', '-e', `${ref.commit}^{commit}`])
          .then(
            () => true,
            () => false,
          );
        if (!have) await this.git().raw(['fetch', '--quiet', '--force', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*']);
      }
      const sha = (await this.git().raw(['rev-parse', '--verify', '--quiet', `${local}^{commit}`])).trim();
      if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`${describe(ref)} not found`);
      return { sha, revision: revisionOf(ref, sha) };
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`git fetch ${redactUrl(this.url)} (${describe(this.ref)}): ${firstLines(msg.split(this.url).join(redactUrl(this.url)))}`);
    }
  }

  /**
   * What `path` is in a commit, and its text when it is a regular file of at most `maxBytes`. Links are never
   * followed, at the path or on the way to it: a link could point outside the repository.
   */
  async readPath(sha: string, path: string, maxBytes: number): Promise<RepoPath> {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) return { kind: 'outside' };
    const clean = parts.join('/');
    const entry = clean === '' ? { mode: '040000', type: 'tree', oid: '', size: -1, path: '' } : (await this.lsTree(sha, clean))[0];
    if (entry === undefined) {
      // Say what stands in the way: a leading part that is a link, a file or a submodule.
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const e = (await this.lsTree(sha, prefix))[0];
        if (e === undefined) break;
        const kind = entryKind(e);
        if (kind !== 'directory') return { kind: 'missing', blockedBy: { path: prefix, kind } };
      }
      return { kind: 'missing' };
    }
    const kind = entryKind(entry);
    if (kind === 'directory') {
      const files = (await this.lsTree(sha, clean === '' ? undefined : `${clean}/`)).filter((e) => entryKind(e) === 'file' && /\.ya?ml$/.test(e.path));
      return { kind, yaml: files.map((e) => e.path) };
    }
    if (kind !== 'file') return { kind };
    if (entry.size > maxBytes) return { kind: 'too-large', size: entry.size };
    return { kind, text: await this.git().raw(['cat-file', 'blob', entry.oid]) };
  }

  /** `git ls-tree -l` of one path (or of a tree's entries, for `dir/`; the root's for undefined), literally. */
  private async lsTree(sha: string, path: string | undefined): Promise<TreeEntry[]> {
    const out = await this.git({ GIT_LITERAL_PATHSPECS: '1' }).raw(['ls-tree', '-l', '-z', sha, ...(path === undefined ? [] : ['--', path])]);
    const entries: TreeEntry[] = [];
    for (const line of out.split('\0')) {
      const m = /^(\d+) (\w+) ([0-9a-f]+) +(-|\d+)\t([^]*)$/.exec(line);
      if (m) entries.push({ mode: m[1], type: m[2], oid: m[3], size: m[4] === '-' ? -1 : Number(m[4]), path: m[5] });
    }
    return entries;
  }

  /** `git verify-commit`: true only for a good signature by a trusted signer. */
  async verifyCommit(sha: string, how: SignatureVerification): Promise<VerifyResult> {
    const args =
      how.mode === 'ssh'
        ? ['-c', `gpg.ssh.allowedSignersFile=${how.allowedSignersFile}`, 'verify-commit', '--raw', sha]
        : ['verify-commit', '--raw', sha];
    const env: Record<string, string> = how.mode === 'gpg' ? { GNUPGHOME: how.gnupgHome } : {};
    // The exit status is the verdict (simple-git reports a failure without stderr as a success, so not through it).
    const out = await new Promise<{ ok: boolean; text: string }>((resolve) => {
      execFile('git', args, { cwd: this.dir, env: { ...this.baseEnv(), ...env }, timeout: this.timeoutMs, signal: this.aborted.signal }, (err, stdout, stderr) => {
        resolve({ ok: err === null, text: `${stderr}\n${stdout}` });
      });
    });
    if (out.ok) return { verified: true, message: firstLines(out.text) || `good signature on ${sha}` };
    const text = firstLines(out.text);
    return { verified: false, message: text === '' ? `commit ${sha} has no valid signature` : text };
  }
}
