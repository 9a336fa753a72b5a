// corvid import's shell without a cluster: help, usage errors, no kubeconfig. The conversion itself is
// test/unit/migrate-raven-import.test.ts; against a real API server, test/integration/migrate-raven.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corvid } from './cli-support.ts';

test('corvid import is listed, and --help says what it reads, writes and leaves out', async () => {
  const top = await corvid(['--help']);
  assert.match(top.stdout, /^ {2}import +write a topology from a live cluster's Raven Gateways$/m);
  const help = await corvid(['import', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: corvid import /);
  assert.match(help.stdout, /never left out silently/);
  assert.match(help.stdout, /No key is read or written/);
});

test('usage errors exit 2; no kubeconfig is an error naming the fix', async () => {
  const unknown = await corvid(['import', '--nodes', 'x.yaml']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /corvid import: unknown flag/);
  const empty = await corvid(['import', '-f', '']);
  assert.equal(empty.code, 2);
  const none = await corvid(['import'], { KUBECONFIG: '/nonexistent/kubeconfig' });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^corvid import: (no kubeconfig found|cannot load kubeconfig)/m);
  assert.equal(none.stdout, '');
});
