// The command lines in deploy/ are ones the CLI accepts: every container's args are run through the real
// `corvid` (flag parsing and value checks), with $(VAR) expanded the way the kubelet does.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { REPO_ROOT, manifestsOf } from './deploy-support.ts';

const CORVID = join(REPO_ROOT, 'bin', 'corvid.js');

function corvid(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CORVID, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    // No cluster: a kubeconfig that does not exist, and no in-cluster service account.
    env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), KUBECONFIG: join(tmpdir(), 'corvid-no-such-kubeconfig'), ...env },
  });
}

/** $(VAR) references expanded from the container's env the way the kubelet does, with sample downward-API values. */
function expand(args: string[], values: Record<string, string>): string[] {
  return args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => values[v] ?? m));
}

function container(file: string, name: string): any {
  const o = manifestsOf(file)[0];
  return o.spec.template.spec.containers.find((c: { name: string }) => c.name === name);
}

function notImplemented(command: string): string | undefined {
  const r = corvid([command, '--help']);
  return /not available in this build/.test(r.stderr) ? `corvid ${command} is not implemented in this build yet` : undefined;
}

describe('command lines in deploy/', () => {
  const agent = container('base/agent-daemonset.yaml', 'agent');
  for (const [family, podIP] of [['IPv4', '10.0.0.5'], ['IPv6', 'fd00::5']]) {
    test(`agent: the DaemonSet's args pass the CLI's flag and value checks (${family} node)`, { skip: notImplemented('agent') }, () => {
      const args = expand(agent.args, { NODE_NAME: 'edge-1', POD_IP: podIP });
      assert.ok(!args.some((a) => a.includes('$(')), `unexpanded variable in ${args.join(' ')}`);
      const r = corvid(args);
      // Every flag and value was accepted: the first thing that fails is loading the (missing) kubeconfig.
      assert.match(r.stderr, /cannot load kubeconfig/, `stderr: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /unknown flag|must be|is required/);
    });
  }

  test('sync: the Deployment\'s args are flags the CLI knows', { skip: notImplemented('sync') }, () => {
    const sync = container('base/sync-deployment.yaml', 'sync');
    const args = expand(sync.args, { POD_NAMESPACE: 'corvid-system', POD_NAME: 'corvid-sync-0' });
    const r = corvid([...args, '--help']);
    assert.equal(r.status, 0, `corvid ${args.join(' ')} --help: ${r.stderr}`);
  });

  test('render: the Argo CD plugin\'s flags', { skip: notImplemented('render') }, () => {
    const script: string = manifestsOf('argocd/plugin.yaml')[0].spec.generate.args[0];
    const line = script.split('\n').find((l) => l.includes('corvid render'))!;
    const flags = [...line.matchAll(/ (-{1,2}[a-z][a-z-]*)/g)].map((m) => m[1]);
    assert.deepEqual(flags, ['-f', '--revision']);
    const r = corvid(['render', '-f', 'x.yaml', '--revision', 'r', '--help']);
    assert.equal(r.status, 0, r.stderr);
  });
});
