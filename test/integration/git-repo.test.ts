// src/adapters/git against real git and ssh-keygen: follow a branch, a tag and a commit; read a path; verify SSH
// commit signatures; authenticate push webhooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { GitRepo, redactUrl } from '../../src/adapters/git/repo.ts';
import { verifyWebhookSignature } from '../../src/adapters/git/webhook.ts';
import { makeGitRemote } from './sync-fixtures.ts';

test('GitRepo follows a branch, a tag and a commit and reads a file of the commit', async () => {
  const remote = await makeGitRemote();
  try {
    const c1 = await remote.commit('topo/topology.yaml', 'one\n');
    const branch = new GitRepo({ url: remote.url, dir: join(remote.root, 'cache-branch'), ref: { branch: 'main' } });
    const f1 = await branch.fetch();
    assert.equal(f1.sha, c1);
    assert.equal(f1.revision, `main@sha1:${c1}`);
    assert.equal(await branch.readFile(f1.sha, 'topo/topology.yaml'), 'one\n');
    assert.equal(await branch.readFile(f1.sha, 'nope.yaml'), undefined);

    await remote.tag('v1');
    const c2 = await remote.commit('topo/topology.yaml', 'two\n');
    const f2 = await branch.fetch();
    assert.equal(f2.sha, c2);
    assert.equal(await branch.readFile(f2.sha, './topo/topology.yaml'), 'two\n');

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
