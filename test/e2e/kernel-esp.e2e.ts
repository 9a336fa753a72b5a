// Kernel ESP, as the DaemonSet's charon runs it (deploy/charon/strongswan.conf: kernel-netlink, no libipsec), in a
// real 6.1 kernel: a User-Mode Linux guest (test/support/uml.ts), since this machine's kernel has no ESP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
