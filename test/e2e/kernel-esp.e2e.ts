// Kernel ESP, as the DaemonSet's charon runs it (deploy/charon/strongswan.conf: kernel-netlink, no libipsec), in a
// real 6.1 kernel: a User-Mode Linux guest (test/support/uml.ts), since this machine's kernel has no ESP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { charonSkipReason } from '../support/charon.ts';
import { startUml, umlSkipReason } from '../support/uml.ts';

const skip = umlSkipReason();

test('the UML guest boots, runs a script and has kernel ESP', { skip, timeout: 60_000 }, async () => {
  const started = Date.now();
  const g = await startUml({
    modules: ['esp4', 'xfrm_user'],
    timeoutMs: 45_000,
    script: `ip xfrm state add src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x100 mode tunnel \
  enc 'cbc(aes)' 0x00112233445566778899aabbccddeeff auth-trunc 'hmac(sha256)' 0x$(printf '%064d' 0) 128 \
  > "$UML_DIR/xfrm" 2>&1 && ip xfrm state >> "$UML_DIR/xfrm"`,
  });
  try {
    const r = await g.exited;
    assert.equal(r.timedOut, false, `guest did not halt:\n${g.console().slice(-2000)}`);
    const xfrm = readFileSync(join(g.dir, 'xfrm'), 'utf8');
    assert.match(xfrm, /proto esp spi 0x00000100/, xfrm);
    console.log(`# UML boot, ESP state, halt: ${Date.now() - started} ms`);
  } finally {
    await g.stop();
  }
});

const GUEST = fileURLToPath(new URL('./kernel-esp-guest.ts', import.meta.url));
const GUEST_MODULES = ['ipv6', 'esp4', 'esp6', 'xfrm_user', 'veth', 'nf_tables', 'nft_masq', 'nft_ct', 'nf_nat', 'tun'];

/** Boot a guest that runs one phase of kernel-esp-guest.ts; returns its result and the guest's console on failure. */
async function runPhase(phase: string, o: { timeoutMs: number; netns?: string; tap?: string; dir?: string }): Promise<{ result: Record<string, unknown>; console: string; ms: number }> {
  const started = Date.now();
  const g = await startUml({ modules: GUEST_MODULES, timeoutMs: o.timeoutMs, netns: o.netns, tap: o.tap, dir: o.dir, script: `'${process.execPath}' '${GUEST}' ${phase} "$UML_DIR"` });
  try {
    const r = await g.exited;
    let result: Record<string, unknown>;
    try {
      result = JSON.parse(readFileSync(join(g.dir, `result-${phase}.json`), 'utf8')) as Record<string, unknown>;
    } catch {
      result = { error: `no result (guest ${r.timedOut ? 'timed out' : `exited ${r.code ?? r.signal}`})` };
    }
    return { result, console: g.console().slice(-4000), ms: Date.now() - started };
  } finally {
    await g.stop();
  }
}

test('charon with the shipped strongswan.conf carries pod traffic through kernel ESP between two namespaces', { skip: skip ?? charonSkipReason(), timeout: 90_000 }, async () => {
  const { result, console: con, ms } = await runPhase('pair', { timeoutMs: 75_000 });
  const show = `${JSON.stringify(result, null, 1)}\n--- console\n${con}`;
  assert.equal(result.error, undefined, show);
  assert.match(String(result.plugins), /kernel-netlink/, show);
  assert.doesNotMatch(String(result.plugins), /libipsec/, show);
  assert.match(String(result.ping), / 0% packet loss/, show);
  assert.match(String(result.xfrmState), /proto esp/, show);
  assert.ok(Number(result.espPackets) >= 6, `ESP states carried ${result.espPackets} packets\n${show}`);
  assert.doesNotMatch(String(result.links), /ipsec0/, show);
  console.log(`# kernel ESP pair: ${ms} ms (${(result.steps as string[]).join(', ')})`);
});
