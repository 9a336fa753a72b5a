// The validator's proposal rules against the real charon: for generated proposals of known keywords, the validator
// says "charon refuses this" (no encryption, or a combination strongSwan refuses) exactly when charon, given the
// proposal over VICI (swanctl --load-conns), refuses to load the connection.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { algorithmKind, ALGORITHM_KEYWORDS, checkProposal } from '../../src/topology/proposals.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { onPath } from '../support/host.ts';

const run = promisify(execFile);
const skip = charonSkipReason() ?? (onPath('swanctl') ? undefined : 'needs swanctl (apt-get install strongswan-swanctl)');

/** Keywords the schema admits (no '_'), by kind, to build proposals that are mostly well-formed. */
const byKind = (kind: string): string[] => ALGORITHM_KEYWORDS.filter((k) => !k.includes('_') && algorithmKind(k) === kind);

describe('proposal combinations: the validator agrees with charon', { skip }, () => {
  let charon: CharonInstance;
  before(async () => {
    charon = await startCharon();
  });
  after(async () => {
    await charon?.stop();
  });

  /** Whether charon loads a connection with these IKE and ESP proposals. */
  async function charonLoads(ike: string, esp: string): Promise<boolean> {
    const file = join(charon.dir, 'swanctl.conf');
    await writeFile(file, `connections { t { remote_addrs = 192.0.2.1\n proposals = ${ike}\n local { auth = psk }\n remote { auth = psk }\n children { c { esp_proposals = ${esp} } } } }\n`);
    try {
      await run('swanctl', ['--load-conns', '--file', file, '--uri', `unix://${charon.socketPath}`]);
      return true;
    } catch {
      return false;
    }
  }

  const refused = (proposal: string, protocol: 'ike' | 'esp'): boolean => {
    const r = checkProposal(proposal, protocol);
    return r.unknown.length > 0 || !r.hasEncryption || r.invalid.length > 0;
  };

  // One or two encryption keywords, then optional integrity, PRF, key exchange and ESN: every combination rule comes up.
  const proposal = fc
    .record({
      enc: fc.array(fc.constantFrom(...byKind('encryption')), { minLength: 1, maxLength: 2 }),
      integ: fc.option(fc.constantFrom(...byKind('integrity'))),
      prf: fc.option(fc.constantFrom(...byKind('prf'))),
      ke: fc.option(fc.constantFrom(...byKind('keyExchange'))),
      esn: fc.option(fc.constantFrom(...byKind('esn')), { freq: 4 }),
    })
    .map((p) => [...p.enc, p.integ, p.prf, p.ke, p.esn].filter((w): w is string => w !== null).join('-'));

  it('knows every keyword of the table', async () => {
    for (const k of ALGORITHM_KEYWORDS) {
      const kind = algorithmKind(k);
      const esp = kind === 'encryption' ? `${k}-sha256` : kind === 'integrity' ? `aes256-${k}` : `aes256-sha256-${k}`;
      assert.ok(await charonLoads('aes256-sha256-modp2048', esp), `charon does not know ${k} (${kind})`);
    }
  });

  it('IKE proposals', async () => {
    const samples = fc.sample(proposal, { numRuns: 150, seed: 20261206 });
    for (const p of ['aes256-sha256-modp2048', 'aes256-sha256', 'aes256gcm16-modp2048', 'aes256-modp2048', 'aes256gcm16-sha256-modp2048', 'aes256-sha256-modpnone', 'aes256-sha256-none', 'aes256-sha256-modpnull', ...samples]) {
      assert.equal(!(await charonLoads(p, 'aes256-sha256')), refused(p, 'ike'), `IKE proposal ${p}`);
    }
  });

  it('ESP proposals', async () => {
    const samples = fc.sample(proposal, { numRuns: 150, seed: 20261207 });
    for (const p of ['aes256-sha256', 'aes256', 'aes256gcm16-sha256', 'aes256-aes256gcm16-sha256', 'sha256', ...samples]) {
      assert.equal(!(await charonLoads('aes256-sha256-modp2048', p)), refused(p, 'esp'), `ESP proposal ${p}`);
    }
  });
});
