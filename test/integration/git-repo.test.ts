// src/adapters/git against real git and ssh-keygen: follow a branch, a tag and a commit; read a path; verify SSH
// commit signatures; authenticate push webhooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { execFile } from 'node:child_process';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GitRepo, redactUrl } from '../../src/adapters/git/repo.ts';
import { verifyWebhookSignature } from '../../src/adapters/git/webhook.ts';
import { GitSource } from '../../src/sync/source-git.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { makeGitRemote, waitFor } from './sync-fixtures.ts';

async function git(args: string[], cwd: string): Promise<string> {
  return (await promisify(execFile)('git', args, { cwd })).stdout;
}

test('GitRepo follows a branch, a tag and a commit and reads a file of the commit', async () => {
  const remote = await makeGitRemote();
  try {
    const c1 = await remote.commit('topo/topology.yaml', 'one\n');
    const branch = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache-branch'), ref: { branch: 'main' } });
    const f1 = await branch.fetch();
    assert.equal(f1.sha, c1);
    assert.equal(f1.revision, `main@sha1:${c1}`);
    assert.deepEqual(await branch.readPath(f1.sha, 'topo/topology.yaml', 100), { kind: 'file', text: 'one\n' });
    assert.deepEqual(await branch.readPath(f1.sha, 'nope.yaml', 100), { kind: 'missing' });

    await remote.tag('v1');
    const c2 = await remote.commit('topo/topology.yaml', 'two\n');
    const f2 = await branch.fetch();
    assert.equal(f2.sha, c2);
    assert.deepEqual(await branch.readPath(f2.sha, './topo/topology.yaml', 100), { kind: 'file', text: 'two\n' });

    const tag = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache-tag'), ref: { tag: 'v1' } });
    assert.equal((await tag.fetch()).revision, `v1@sha1:${c1}`);
    const fixed = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache-commit'), ref: { commit: c1 } });
    assert.equal((await fixed.fetch()).revision, `sha1:${c1}`);

    const missing = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache-missing'), ref: { branch: 'nope' } });
    await assert.rejects(missing.fetch(), /git fetch .*branch nope/);
  } finally {
    await remote.cleanup();
  }
});

test('GitRepo.readPath says what a path is that is not a file, and never follows a link', async () => {
  const remote = await makeGitRemote();
  try {
    await remote.commit('topology/edge.yaml', 'edge\n');
    await remote.commit('topology/core.yml', 'core\n');
    await remote.commit('topology/README.md', 'read me\n');
    await remote.commit('topology/lab/x.yaml', 'lab\n');
    await remote.commit('big.yaml', 'x'.repeat(101));
    await remote.commit('empty/README.md', '\n');
    const outside = join(remote.root, 'secret.yaml');
    await writeFile(outside, 'secret\n');
    await symlink('topology/edge.yaml', join(remote.work, 'link.yaml'));
    await symlink('topology', join(remote.work, 'linkdir'));
    await symlink(outside, join(remote.work, 'escape.yaml'));
    await git(['add', 'link.yaml', 'linkdir', 'escape.yaml'], remote.work);
    // A submodule entry (a commit of another repository), as git writes it for `git submodule add`.
    const other = (await git(['rev-parse', 'HEAD'], remote.work)).trim();
    await git(['update-index', '--add', '--cacheinfo', `160000,${other},vendored`], remote.work);
    const sha = await remote.commit('topology/edge.yaml', 'edge 2\n');

    const repo = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache'), ref: { branch: 'main' } });
    assert.equal((await repo.fetch()).sha, sha);
    const read = (path: string) => repo.readPath(sha, path, 100);
    assert.deepEqual(await read('topology/edge.yaml'), { kind: 'file', text: 'edge 2\n' });
    assert.deepEqual(await read('topology'), { kind: 'directory', yaml: ['topology/core.yml', 'topology/edge.yaml'] });
    assert.deepEqual(await read('topology/'), { kind: 'directory', yaml: ['topology/core.yml', 'topology/edge.yaml'] });
    assert.deepEqual(await read('empty'), { kind: 'directory', yaml: [] });
    assert.deepEqual(await read('.'), { kind: 'directory', yaml: ['big.yaml'] });
    assert.deepEqual(await read('link.yaml'), { kind: 'symlink' });
    assert.deepEqual(await read('escape.yaml'), { kind: 'symlink' });
    assert.deepEqual(await read('linkdir'), { kind: 'symlink' });
    assert.deepEqual(await read('linkdir/edge.yaml'), { kind: 'missing', blockedBy: { path: 'linkdir', kind: 'symlink' } });
    assert.deepEqual(await read('big.yaml/x.yaml'), { kind: 'missing', blockedBy: { path: 'big.yaml', kind: 'file' } });
    assert.deepEqual(await read('vendored'), { kind: 'submodule' });
    assert.deepEqual(await read('vendored/topology.yaml'), { kind: 'missing', blockedBy: { path: 'vendored', kind: 'submodule' } });
    assert.deepEqual(await read('big.yaml'), { kind: 'too-large', size: 101 });
    assert.deepEqual(await read('../secret.yaml'), { kind: 'outside' });
    assert.deepEqual(await read('topology/../link.yaml'), { kind: 'outside' });
    // Pathspec magic and globs are names like any other.
    assert.deepEqual(await read(':(glob)*.yaml'), { kind: 'missing' });
    assert.deepEqual(await read('topology/*.yaml'), { kind: 'missing' });
  } finally {
    await remote.cleanup();
  }
});

test('the git source says what --git-path is when it is a directory or a link, and reads the file once it is one', async () => {
  const remote = await makeGitRemote();
  const logger = jsonLogger({ level: 'error', write: () => {} });
  const sources: GitSource[] = [];
  const source = async (path: string): Promise<GitSource> => {
    const s = new GitSource({ url: remote.url, ref: { branch: 'main' }, path, cacheDir: join(remote.root, `cache-${sources.length}`), intervalMs: 60_000, logger });
    sources.push(s);
    await s.start(() => {});
    return s;
  };
  const message = (s: GitSource): string => {
    const a = s.latest();
    assert.ok(a !== undefined && !a.ok, JSON.stringify(a));
    assert.equal(a.reason, 'ArtifactFailed');
    assert.equal(a.transient, false);
    return a.message;
  };
  try {
    await remote.commit('topology/edge.yaml', 'apiVersion: corvid.dev/v1alpha1\n');
    await remote.commit('topology/core.yaml', 'apiVersion: corvid.dev/v1alpha1\n');
    await symlink('topology/edge.yaml', join(remote.work, 'link.yaml'));
    await git(['add', 'link.yaml'], remote.work);
    const sha = await remote.commit('topology/lab.yaml', 'apiVersion: corvid.dev/v1alpha1\n');
    const rev = `main@sha1:${sha}`;

    assert.equal(
      message(await source('topology/')),
      `topology/ is a directory in ${rev}; point --git-path at a YAML file in it, e.g. topology/core.yaml (also topology/edge.yaml, topology/lab.yaml)`,
    );
    assert.equal(
      message(await source('link.yaml')),
      `link.yaml is a symbolic link in ${rev}; the sync reads files only, not links (a link could point outside the repository): point --git-path at the file itself`,
    );
    assert.equal(message(await source('nope.yaml')), `nope.yaml: no such file in ${rev}`);

    // The next commit makes the path a file: it is read.
    const dir = sources[0];
    await git(['rm', '-r', '--quiet', 'topology'], remote.work);
    const fixed = await remote.commit('topology', 'apiVersion: corvid.dev/v1alpha1\n');
    dir.refresh();
    await waitFor('the file is read', () => dir.latest()?.ok === true);
    assert.equal(dir.latest()?.revision, `main@sha1:${fixed}`);
  } finally {
    await Promise.all(sources.map((s) => s.stop()));
    await remote.cleanup();
  }
});

test('verifyCommit: trusted SSH signature passes; unsigned and untrusted fail', async () => {
  const remote = await makeGitRemote();
  try {
    const repo = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache'), ref: { branch: 'main' } });
    const how = { mode: 'ssh' as const, allowedSignersFile: remote.allowedSigners };
    await remote.commit('t.yaml', 'a\n', { sign: 'trusted' });
    const good = await repo.fetch();
    const v1 = await repo.verifyCommit(good.sha, how);
    assert.equal(v1.verified, true, v1.message);

    await remote.commit('t.yaml', 'b\n');
    const unsigned = await repo.fetch();
    const v2 = await repo.verifyCommit(unsigned.sha, how);
    assert.equal(v2.verified, false);
    assert.ok(v2.message.length > 0);

    await remote.commit('t.yaml', 'c\n', { sign: 'untrusted' });
    const bad = await repo.fetch();
    const v3 = await repo.verifyCommit(bad.sha, how);
    assert.equal(v3.verified, false, v3.message);
  } finally {
    await remote.cleanup();
  }
});

test('webhook signatures: GitHub and Gitea headers, constant-time compare, no header is a failure', () => {
  const body = Buffer.from('{"ref":"refs/heads/main"}');
  const secret = 's3cret';
  const hex = createHmac('sha256', secret).update(body).digest('hex');
  assert.deepEqual(verifyWebhookSignature({ 'x-hub-signature-256': `sha256=${hex}` }, body, secret), { ok: true, provider: 'github' });
  assert.deepEqual(verifyWebhookSignature({ 'x-gitea-signature': hex }, body, secret), { ok: true, provider: 'gitea' });
  assert.equal(verifyWebhookSignature({ 'x-hub-signature-256': `sha256=${hex}` }, Buffer.from('{}'), secret).ok, false);
  assert.equal(verifyWebhookSignature({ 'x-hub-signature-256': hex }, body, secret).ok, false);
  assert.equal(verifyWebhookSignature({ 'x-gitea-signature': 'zz' }, body, secret).ok, false);
  assert.equal(verifyWebhookSignature({}, body, secret).ok, false);
  assert.equal(verifyWebhookSignature({ 'x-hub-signature-256': `sha256=${hex}` }, body, '').ok, false);
  assert.equal(redactUrl('https://user:tok@example.com/r.git'), 'https://***@example.com/r.git');
});

test('verifyCommit: GPG signatures against a GnuPG home of trusted keys', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { mkdir, chmod } = await import('node:fs/promises');
  try {
    execFileSync('gpg', ['--version'], { stdio: 'ignore' });
  } catch {
    t.skip('needs gpg');
    return;
  }
  const remote = await makeGitRemote();
  try {
    const signer = join(remote.root, 'gnupg-signer');
    const empty = join(remote.root, 'gnupg-empty');
    for (const d of [signer, empty]) {
      await mkdir(d);
      await chmod(d, 0o700);
    }
    const env = { ...process.env, GNUPGHOME: signer };
    execFileSync('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'Corvid Test <test@corvid.dev>', 'ed25519', 'sign', 'never'], { env, stdio: 'ignore' });
    const fpr = execFileSync('gpg', ['--list-secret-keys', '--with-colons'], { env }).toString().split('\n').find((l) => l.startsWith('fpr'))!.split(':')[9];
    execFileSync('git', ['-c', `user.signingkey=${fpr}`, 'commit', '--quiet', '--allow-empty', '-S', '-m', 'gpg signed'], { cwd: remote.work, env });
    execFileSync('git', ['push', '--quiet', 'origin', 'main:main'], { cwd: remote.work, env });
    const repo = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache'), ref: { branch: 'main' } });
    const c = await repo.fetch();
    assert.equal((await repo.verifyCommit(c.sha, { mode: 'gpg', gnupgHome: signer })).verified, true);
    assert.equal((await repo.verifyCommit(c.sha, { mode: 'gpg', gnupgHome: empty })).verified, false, 'a key not in the keyring is not trusted');
  } finally {
    // gpg starts an agent per GnuPG home: stop ours before the homes go.
    for (const d of ['gnupg-signer', 'gnupg-empty']) {
      try {
        execFileSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: join(remote.root, d) }, stdio: 'ignore' });
      } catch {
        // not started
      }
    }
    await remote.cleanup();
  }
});
