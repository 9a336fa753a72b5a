// One test per meaning rule of the topology validator: exact message, exact position, exact path.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadTopology } from '../../src/topology/index.ts';
import { doc, expectErrors, expectValid, FILE, pool, PSK } from './topology-helpers.ts';

const NAT = 'behindNAT: true';

describe('topology meaning: pools and gateways', () => {
  it('refuses two pools with the same name, at the second name', () => {
    const t = doc({ pools: [pool('cloud'), pool('edge'), pool('cloud', '', '[{node: other-gw}]')] });
    expectErrors(t, [[['name: ^cloud', 1], 'spec.pools[2].name', 'another pool already has this name (spec.pools[0]); pool names must be unique']]);
  });

  it('refuses a node that is a gateway of two pools, at the second mention', () => {
    const t = doc({ pools: [pool('cloud', '', '[{node: n1}, {node: n2}]'), pool('edge', '', '[{node: n3}, {node: n2}]')] });
    expectErrors(t, [
      [
        ['node: ^n2', 1],
        'spec.pools[1].gateways[1].node',
        'this node is already a gateway of pool "cloud" (spec.pools[0].gateways[1].node); a node can be a gateway of one pool only',
      ],
    ]);
  });

  it('refuses a node listed twice in one pool', () => {
    const t = doc({ pools: [pool('cloud', '', '[{node: n1}, {node: n1}]'), pool('edge')] });
    expectErrors(t, [[['node: ^n1', 1], 'spec.pools[0].gateways[1].node', 'this node is already listed at spec.pools[0].gateways[0]; list each gateway once']]);
  });

  it('refuses a pool without gateways (Corvid elects only declared candidates)', () => {
    const t = doc({ pools: [pool('cloud', '', '[]'), pool('edge')] });
    expectErrors(t, [['gateways: ^[]', 'spec.pools[0].gateways', 'must list at least one gateway node; Corvid elects only declared candidates']]);
  });

  it('refuses an empty nodeSelector and two pools with the same selector', () => {
    const t = doc({
      pools: [
        '- name: cloud\n  nodeSelector: {}\n  gateways: [{node: c1}]',
        '- name: edge\n  nodeSelector: {matchLabels: {pool: x}}\n  gateways: [{node: e1}]',
        '- name: edge2\n  nodeSelector: {matchLabels: {pool: x}}\n  gateways: [{node: e2}]',
      ],
    });
    expectErrors(t, [
      ['^nodeSelector: {}', 'spec.pools[0].nodeSelector', 'is empty and would select every node of the cluster; set matchLabels or matchExpressions'],
      [
        ['^nodeSelector: {matchLabels: {pool: x}}', 1],
        'spec.pools[2].nodeSelector',
        'selects the same nodes as spec.pools[1]; every node belongs to one pool, so give each pool its own selector',
      ],
    ]);
  });

  it('checks matchExpressions operators against their values', () => {
    const sel = (exprs: string): string => `- name: cloud\n  nodeSelector:\n    matchExpressions:\n${exprs}  gateways: [{node: c1}]`;
    const t = doc({
      pools: [
        sel('      - {key: a, operator: In}\n      - {key: b, operator: NotIn, values: []}\n      - {key: c, operator: Exists, values: [x]}\n      - {key: d, operator: DoesNotExist, values: []}\n'),
        pool('edge'),
      ],
    });
    expectErrors(t, [
      ['operator: ^In}', 'spec.pools[0].nodeSelector.matchExpressions[0].operator', 'operator In needs a non-empty values list; add values'],
      ['values: ^[]}', 'spec.pools[0].nodeSelector.matchExpressions[1].values', 'operator NotIn needs at least one value'],
      ['^values: [x]', 'spec.pools[0].nodeSelector.matchExpressions[2].values', 'operator Exists takes no values; remove values'],
    ]);
  });

  it('refuses invalid public IPs (IPv4 and IPv6) and accepts valid ones', () => {
    const t = doc({
      pools: [
        pool('cloud', '', '[{node: c1, publicIP: 203.0.113.300}, {node: c2, publicIP: "2001:db8::1::2"}, {node: c3, publicIP: "2001:db8::10"}, {node: c4, publicIP: 198.51.100.1}]'),
        pool('edge'),
      ],
    });
    const msg = 'must be an IPv4 or IPv6 address, e.g. 203.0.113.10 or 2001:db8::10';
    expectErrors(t, [
      ['publicIP: ^203.0.113.300', 'spec.pools[0].gateways[0].publicIP', msg],
      ['publicIP: ^"2001:db8::1::2"', 'spec.pools[0].gateways[1].publicIP', msg],
    ]);
  });

  it('refuses ports outside 1-65535', () => {
    const t = doc({ pools: [pool('cloud', '', '[{node: c1, publicPort: 0}, {node: c2, publicPort: 65536}, {node: c3, publicPort: 65535}]'), pool('edge')] });
    const msg = 'must be a port number from 1 to 65535';
    expectErrors(t, [
      ['publicPort: ^0}', 'spec.pools[0].gateways[0].publicPort', msg],
      ['publicPort: ^65536', 'spec.pools[0].gateways[1].publicPort', msg],
    ]);
  });

  it('warns about a public IP other pools cannot reach', () => {
    const t = doc({ pools: [pool('cloud', '', '[{node: c1, publicIP: 127.0.0.1}]'), pool('edge')] });
    expectValid(t, [['publicIP: ^127', 'spec.pools[0].gateways[0].publicIP', 'is a loopback, unspecified, link-local or multicast address, which other pools cannot reach']]);
  });

  it('refuses an empty pools list unless allowEmpty is true', () => {
    expectErrors(doc({ pools: [] }), [
      ['pools: ^[]', 'spec.pools', 'the topology has no pools; add pools, or set spec.allowEmpty: true if removing every Gateway is intended'],
    ]);
    const topo = expectValid(doc({ pools: [], other: 'allowEmpty: true' }));
    assert.equal(topo.allowEmpty, true);
    assert.deepEqual(topo.pools, []);
  });

  it('warns when replicas exceed a pool\'s candidates', () => {
    const t = doc({ election: 'replicas: 2', pools: [pool('cloud', '', '[{node: c1}, {node: c2}]'), pool('edge')] });
    expectValid(t, [[['^gateways: [{node: edge-gw}]', 0], 'spec.pools[1].gateways', 'lists 1 gateway but spec.election.replicas is 2; the pool will run with fewer active gateways than asked']]);
  });
});

describe('topology meaning: references', () => {
  it('refuses a relay, hub, rule or link naming an unknown pool, suggesting a close name', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [edge, clouds]}\n  - {action: deny, pools: ["*", nowhere]}\n',
      pools: [pool('cloud'), pool('edge', `${NAT}\nrelay: clod`)],
      links: '- pools: [cloud, edgy]\n  encryption: {espProposals: [aes256-sha512]}\n',
    });
    expectErrors(t, [
      ['edge, ^clouds', 'spec.connectivity.rules[0].pools[1]', 'no pool has this name; did you mean "cloud"?'],
      ['"*", ^nowhere', 'spec.connectivity.rules[1].pools[1]', 'no pool has this name; declared pools: cloud, edge'],
      ['relay: ^clod', 'spec.pools[1].relay', 'no pool has this name; did you mean "cloud"?'],
      ['cloud, ^edgy', 'spec.links[0].pools[1]', 'no pool has this name; did you mean "edge"?'],
    ]);
  });

  it('refuses an unknown hub', () => {
    const t = doc({ connectivity: 'mode: hub\nhub: datacentre', pools: [pool('cloud'), pool('edge')] });
    expectErrors(t, [['hub: ^datacentre', 'spec.connectivity.hub', 'no pool has this name; declared pools: cloud, edge']]);
  });

  it('allows "*" only in rules', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: ["*", "*"]}\n',
      pools: [pool('cloud'), pool('edge', `${NAT}\nrelay: "*"`)],
      links: '- pools: ["*", cloud]\n  encryption: {backend: wireguard}\n',
    });
    const msg = 'must be the name of a pool (a DNS-1123 label); the "*" wildcard is only allowed in connectivity.rules';
    expectErrors(t, [
      ['relay: ^"*"', 'spec.pools[1].relay', msg],
      ['pools: [^"*", cloud]', 'spec.links[0].pools[0]', msg],
    ]);
  });

  it('refuses a rule or link naming one pool twice, and duplicate links entries', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [edge, edge]}\n',
      pools: [pool('cloud'), pool('edge')],
      links: '- pools: [cloud, cloud]\n  encryption: {backend: wireguard}\n- pools: [cloud, edge]\n  encryption: {backend: wireguard}\n- pools: [edge, cloud]\n  encryption: {backend: ipsec}\n',
    });
    expectErrors(t, [
      ['pools: ^[edge, edge]', 'spec.connectivity.rules[0].pools', 'names the same pool twice; a rule is about two different pools (traffic inside a pool is never touched)'],
      ['pools: ^[cloud, cloud]', 'spec.links[0].pools', 'names the same pool twice; a link joins two different pools'],
      ['pools: ^[edge, cloud]', 'spec.links[2].pools', 'this pair already has an entry at spec.links[1]; merge the two entries into one'],
    ]);
  });
});

describe('topology meaning: NAT and relays', () => {
  it('refuses a relay that is itself behind NAT', () => {
    const t = doc({ pools: [pool('cloud'), pool('edge-a', NAT), pool('edge-b', `${NAT}\nrelay: edge-a`)] });
    expectErrors(t, [['relay: ^edge-a', 'spec.pools[2].relay', 'pool "edge-a" is itself behind NAT and cannot relay; name a pool with behindNAT: false']]);
  });

  it('refuses a pool relaying through itself', () => {
    const t = doc({ pools: [pool('cloud'), pool('edge', `${NAT}\nrelay: edge`)] });
    expectErrors(t, [['relay: ^edge', 'spec.pools[1].relay', 'a pool cannot relay through itself; name a pool that is not behind NAT, or remove relay']]);
  });

  it('refuses a relay the rules deny for the pool', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [cloud, edge-a]}\n',
      pools: [pool('cloud'), pool('edge-a', `${NAT}\nrelay: cloud`), pool('edge-b', `${NAT}\nrelay: cloud`)],
    });
    expectErrors(t, [['relay: ^cloud', 'spec.pools[1].relay', 'spec.connectivity.rules[0] denies this pool and "cloud", so it cannot relay for it; allow the pair or name another relay']]);
  });

  it('refuses two NAT\'d pools that may talk when no pool can relay', () => {
    const t = doc({ pools: [pool('edge-a', NAT), pool('edge-b', NAT)] });
    expectErrors(t, [
      [
        ['behindNAT: ^true', 1],
        'spec.pools[1].behindNAT',
        'pools "edge-a" and "edge-b" are both behind NAT and may talk, but no pool can relay between them: add a pool with behindNAT: false, or deny the pair in spec.connectivity.rules',
      ],
    ]);
    // Denying the pair makes it fine.
    expectValid(doc({ connectivity: 'rules:\n  - {action: deny, pools: [edge-a, edge-b]}\n', pools: [pool('edge-a', NAT), pool('edge-b', NAT)] }), [
      ['name: ^edge-a', 'spec.pools[0].name', 'can reach no other pool: every pair with it is denied or has no path'],
      ['name: ^edge-b', 'spec.pools[1].name', 'can reach no other pool: every pair with it is denied or has no path'],
    ]);
  });

  it('reports the missing relay at an explicit allow rule', () => {
    const t = doc({ connectivity: 'rules:\n  - {action: allow, pools: [edge-a, edge-b]}\n', pools: [pool('edge-a', NAT), pool('edge-b', NAT)] });
    expectErrors(t, [
      [
        '- ^{action: allow',
        'spec.connectivity.rules[0]',
        'pools "edge-a" and "edge-b" are both behind NAT and may talk, but no pool can relay between them: add a pool with behindNAT: false, or deny the pair in spec.connectivity.rules',
      ],
    ]);
  });

  it('accepts NAT\'d pools without an explicit relay when one pool outside NAT exists', () => {
    const topo = expectValid(doc({ pools: [pool('cloud'), pool('edge-a', NAT), pool('edge-b', NAT)] }));
    assert.equal(topo.pools[1].relay, undefined, 'the automatic relay is the sync controller\'s choice, not filled in');
  });

  it('accepts NAT\'d spokes in hub mode: the hub is the relay', () => {
    expectValid(doc({ connectivity: 'mode: hub\nhub: cloud', pools: [pool('cloud'), pool('edge-a', NAT), pool('edge-b', NAT)] }));
  });

  it('refuses two NAT\'d pools that may talk but name different relays', () => {
    const t = doc({ pools: [pool('cloud'), pool('dc'), pool('edge-a', `${NAT}\nrelay: cloud`), pool('edge-b', `${NAT}\nrelay: dc`)] });
    expectErrors(t, [
      [
        'relay: ^dc',
        'spec.pools[3].relay',
        'pools "edge-a" and "edge-b" are both behind NAT and may talk, but relay through different pools ("cloud" and "dc"); pools behind NAT reach each other only through a common relay: set the same relay on both, or deny the pair',
      ],
    ]);
  });

  it('warns when one NAT\'d pool pins a relay and its NAT\'d peer leaves the choice open', () => {
    const t = doc({ pools: [pool('cloud'), pool('dc'), pool('edge-a', `${NAT}\nrelay: cloud`), pool('edge-b', NAT)] });
    expectValid(t, [
      [
        ['behindNAT: ^true', 1],
        'spec.pools[3].behindNAT',
        'names no relay while pool "edge-a" (also behind NAT) relays through "cloud"; pools behind NAT reach each other only through a common relay, so set relay: cloud here too',
      ],
    ]);
  });

  it('accepts NAT\'d pools naming no relay when several pools could relay: they share the one automatic relay', () => {
    expectValid(doc({ pools: [pool('cloud'), pool('dc'), pool('edge-a', NAT), pool('edge-b', NAT)] }));
  });

  it('warns when the automatic relay cannot be the one a NAT\'d peer names (the rules deny it for an automatic pool)', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [edge-b, cloud]}\n',
      pools: [pool('cloud'), pool('dc'), pool('edge-a', `${NAT}\nrelay: cloud`), pool('edge-b', NAT)],
    });
    expectValid(t, [
      [
        ['behindNAT: ^true', 1],
        'spec.pools[3].behindNAT',
        'pools "edge-a" and "edge-b" are both behind NAT but relay through different pools ("cloud" and "dc", Corvid\'s choice for pools that name no relay), so they cannot reach each other; pools behind NAT reach each other only through a common relay: set the same relay on both, or deny the pair',
      ],
    ]);
  });

  it('refuses an explicit allow for two NAT\'d pools whose automatic relays differ', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: allow, pools: [edge-a, edge-b]}\n  - {action: deny, pools: [edge-a, cloud]}\n  - {action: deny, pools: [edge-b, dc]}\n',
      pools: [pool('cloud'), pool('dc'), pool('edge-a', NAT), pool('edge-b', NAT)],
    });
    expectErrors(t, [
      [
        '- ^{action: allow',
        'spec.connectivity.rules[0]',
        'allows pools "edge-a" and "edge-b", but they are both behind NAT and relay through different pools ("dc" and "cloud", Corvid\'s choice for pools that name no relay); set the same relay on both, or remove this rule',
      ],
    ]);
  });

  it('warns about a relay on a pool that is not behind NAT', () => {
    const t = doc({ pools: [pool('cloud'), pool('edge', 'relay: cloud')] });
    expectValid(t, [['^relay: cloud', 'spec.pools[1].relay', 'is used only by pools behind NAT; remove it, or set behindNAT: true if the pool is behind NAT']]);
  });
});

describe('topology meaning: hub mode', () => {
  it('needs a hub', () => {
    const t = doc({ connectivity: 'mode: hub', pools: [pool('cloud'), pool('edge')] });
    expectErrors(t, [['mode: ^hub', 'spec.connectivity.mode', 'mode hub needs connectivity.hub: the name of the hub pool']]);
  });

  it('refuses a hub behind NAT', () => {
    const t = doc({ connectivity: 'mode: hub\nhub: edge', pools: [pool('cloud'), pool('edge', NAT)] });
    expectErrors(t, [['hub: ^edge', 'spec.connectivity.hub', 'pool "edge" is behind NAT and cannot be the hub; pick a pool with behindNAT: false']]);
  });

  it('refuses a relay other than the hub', () => {
    const t = doc({ connectivity: 'mode: hub\nhub: cloud', pools: [pool('cloud'), pool('dc'), pool('edge', `${NAT}\nrelay: dc`)] });
    expectErrors(t, [['relay: ^dc', 'spec.pools[2].relay', 'in hub mode pools behind NAT relay through the hub "cloud"; remove relay or set it to the hub']]);
  });

  it('warns about a hub in mesh mode', () => {
    const t = doc({ connectivity: 'hub: cloud', pools: [pool('cloud'), pool('edge')] });
    expectValid(t, [['^hub: cloud', 'spec.connectivity.hub', 'is used only when mode is hub; remove it or set mode: hub']]);
  });
});

describe('topology meaning: rules that cut paths', () => {
  it('refuses an explicit allow for two NAT\'d pools whose relay hop is denied', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: allow, pools: [edge-a, edge-b]}\n  - {action: deny, pools: [edge-b, cloud]}\n',
      pools: [pool('cloud'), pool('edge-a', `${NAT}\nrelay: cloud`), pool('edge-b', NAT)],
    });
    expectErrors(t, [
      [
        '- ^{action: allow',
        'spec.connectivity.rules[0]',
        'allows pools "edge-a" and "edge-b", but their traffic must pass through their relay "cloud" and spec.connectivity.rules[1] denies "edge-b" and "cloud"; allow that pair in an earlier rule, or remove this rule',
      ],
    ]);
  });

  it('refuses an explicit allow between spokes when a spoke-hub link is denied', () => {
    const t = doc({
      connectivity: 'mode: hub\nhub: cloud\nrules:\n  - {action: deny, pools: [cloud, edge-b]}\n  - {action: allow, pools: [edge-a, edge-b]}\n',
      pools: [pool('cloud'), pool('edge-a'), pool('edge-b')],
    });
    expectErrors(t, [
      [
        '- ^{action: allow',
        'spec.connectivity.rules[1]',
        'allows pools "edge-a" and "edge-b", but their traffic must pass through the hub "cloud" and spec.connectivity.rules[0] denies "edge-b" and "cloud"; allow that pair in an earlier rule, or remove this rule',
      ],
    ]);
  });

  it('only warns when the pair is allowed by default', () => {
    const t = doc({
      connectivity: 'mode: hub\nhub: cloud\nrules:\n  - {action: deny, pools: [cloud, edge-b]}\n',
      pools: [pool('cloud'), pool('edge-a'), pool('edge-b')],
    });
    expectValid(t, [
      [
        '- ^{action: deny',
        'spec.connectivity.rules[0]',
        'also cuts pools "edge-a" and "edge-b" off from each other, because their traffic must pass through the hub "cloud"; add a deny rule for them to say so, or allow "edge-b" and "cloud"',
      ],
      ['name: ^edge-b', 'spec.pools[2].name', 'can reach no other pool: every pair with it is denied or has no path'],
    ]);
  });

  it('warns about a rule that never applies', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [edge, "*"]}\n  - {action: allow, pools: [cloud, edge]}\n',
      pools: [pool('cloud'), pool('edge'), pool('dc')],
    });
    expectValid(t, [
      ['- ^{action: allow', 'spec.connectivity.rules[1]', 'never applies: spec.connectivity.rules[0] comes first and matches every pair it covers'],
      ['name: ^edge', 'spec.pools[1].name', 'can reach no other pool: every pair with it is denied or has no path'],
    ]);
  });
});

describe('topology meaning: encryption', () => {
  it('refuses ipsec without a pre-shared key reference, at spec.encryption or at spec', () => {
    const msg = 'backend ipsec needs a pre-shared key: add pskSecretRef {name, key} naming the Secret that holds it (Corvid has no built-in key)';
    const withBlock = doc({ encryption: 'encryption:\n  backend: ipsec\n', pools: [pool('cloud'), pool('edge')] });
    expectErrors(withBlock, [['  ^encryption:', 'spec.encryption', msg]]);
    const without = doc({ encryption: '', pools: [pool('cloud'), pool('edge')] });
    expectErrors(without, [['^spec:', 'spec.encryption', msg]]);
  });

  it('refuses wireguard without a pre-shared key reference in a pool override', () => {
    const t = doc({ encryption: 'encryption: {backend: none, allowInsecure: true}\n', pools: [pool('cloud', 'encryption: {backend: wireguard}'), pool('edge')] });
    expectErrors(t, [
      [
        'backend: ^wireguard',
        'spec.pools[0].encryption.backend',
        'backend wireguard needs a pre-shared key: add pskSecretRef {name, key} naming the Secret that holds it (Corvid has no built-in key)',
      ],
    ]);
  });

  it('refuses ipsec without a pre-shared key reference in a link override', () => {
    const t = doc({
      encryption: 'encryption: {backend: none, allowInsecure: true}\n',
      pools: [pool('cloud'), pool('edge')],
      links: '- pools: [cloud, edge]\n  encryption: {backend: ipsec, allowInsecure: false}\n',
    });
    expectErrors(t, [
      [
        'backend: ^ipsec, allowInsecure: false',
        'spec.links[0].encryption.backend',
        'backend ipsec needs a pre-shared key: add pskSecretRef {name, key} naming the Secret that holds it (Corvid has no built-in key)',
      ],
    ]);
  });

  it('refuses backend none without allowInsecure: in defaults, a pool override and a link override', () => {
    const msg = 'backend none sends pod traffic unencrypted; set allowInsecure: true next to it to accept that, or use ipsec';
    expectErrors(doc({ encryption: 'encryption:\n  backend: none\n', pools: [pool('cloud'), pool('edge')] }), [['backend: ^none', 'spec.encryption.backend', msg]]);
    expectErrors(doc({ pools: [pool('cloud', 'encryption: {backend: none}'), pool('edge')] }), [['backend: ^none', 'spec.pools[0].encryption.backend', msg]]);
    expectErrors(doc({ pools: [pool('cloud'), pool('edge')], links: '- pools: [cloud, edge]\n  encryption: {backend: none}\n' }), [
      ['backend: ^none', 'spec.links[0].encryption.backend', msg],
    ]);
  });

  it('refuses a link whose effective policy ends up as none without allowInsecure', () => {
    const t = doc({
      pools: [pool('cloud', 'encryption: {backend: none, allowInsecure: true}'), pool('edge')],
      links: '- pools: [cloud, edge]\n  encryption: {allowInsecure: false}\n',
    });
    expectErrors(t, [
      [
        '  ^encryption: {allowInsecure',
        'spec.links[0].encryption',
        'the link between pools "cloud" and "edge" ends up with backend none and allowInsecure false; set allowInsecure: true for it in a spec.links entry, or choose an encrypting backend',
      ],
    ]);
  });

  it('accepts backend none with allowInsecure: true', () => {
    const topo = expectValid(doc({ encryption: 'encryption: {backend: none, allowInsecure: true}\n', pools: [pool('cloud'), pool('edge')] }));
    assert.equal(topo.encryption.backend, 'none');
  });

  it('refuses weak proposals unless allowInsecure', () => {
    const t = doc({ encryption: `${PSK}  ikeProposals: [aes256-sha256-modp2048, 3des-md5-modp1024]\n`, pools: [pool('cloud'), pool('edge')] });
    expectErrors(t, [
      [
        '^3des-md5',
        'spec.encryption.ikeProposals[1]',
        'uses weak algorithms: 3des (DES/3DES: 64-bit blocks and at most 112-bit keys); md5 (MD5: a broken hash); modp1024 (MODP below 2048 bits: under 112-bit security); use strong ones such as aes256-sha256-modp2048, or set allowInsecure: true to accept them',
      ],
    ]);
    expectValid(doc({ encryption: `${PSK}  ikeProposals: [3des-md5-modp1024]\n  allowInsecure: true\n`, pools: [pool('cloud'), pool('edge')] }));
  });

  it('refuses conflicting pool overrides on a tunnel without a links entry', () => {
    const t = doc({
      pools: [pool('cloud', 'encryption: {espProposals: [aes256-sha384]}'), pool('edge', 'encryption: {espProposals: [aes256-sha512], backend: ipsec}')],
    });
    expectErrors(t, [
      [
        ['^espProposals', 1],
        'spec.pools[1].encryption.espProposals',
        'pools "cloud" and "edge" set different espProposals and are joined by a tunnel; add a spec.links entry for the pair [cloud, edge] that sets encryption.espProposals',
      ],
    ]);
  });

  it('refuses a links entry that does not settle the conflicting field', () => {
    const t = doc({
      pools: [pool('cloud', 'encryption: {espProposals: [aes256-sha384]}'), pool('edge', 'encryption: {espProposals: [aes256-sha512]}')],
      links: '- pools: [edge, cloud]\n  encryption: {ikeProposals: [aes256-sha384-modp3072]}\n',
    });
    expectErrors(t, [
      ['  ^encryption: {ikeProposals', 'spec.links[0].encryption', 'pools "cloud" and "edge" set different espProposals; set encryption.espProposals in this entry to decide'],
    ]);
  });

  it('accepts conflicting pool overrides settled by a links entry, or on a denied pair', () => {
    const pools = [pool('cloud', 'encryption: {espProposals: [aes256-sha384]}'), pool('edge', 'encryption: {espProposals: [aes256-sha512]}')];
    const topo = expectValid(doc({ pools, links: '- pools: [edge, cloud]\n  encryption: {espProposals: [aes256gcm16]}\n' }));
    assert.deepEqual(topo.links, [{ pools: ['cloud', 'edge'], encryption: { espProposals: ['aes256gcm16'] } }]);
    expectValid(doc({ pools, connectivity: 'rules:\n  - {action: deny, pools: [cloud, edge]}\n' }), [
      ['name: ^cloud', 'spec.pools[0].name', 'can reach no other pool: every pair with it is denied or has no path'],
      ['name: ^edge', 'spec.pools[1].name', 'can reach no other pool: every pair with it is denied or has no path'],
    ]);
  });

  it('warns about overrides that change nothing and links without a tunnel', () => {
    const t = doc({
      connectivity: 'rules:\n  - {action: deny, pools: [edge, dc]}\n',
      pools: [pool('cloud', 'encryption: {backend: ipsec}'), pool('edge'), pool('dc')],
      links: '- pools: [cloud, edge]\n  encryption: {espProposals: [aes256-sha256]}\n- pools: [edge, dc]\n  encryption: {backend: wireguard}\n',
    });
    expectValid(t, [
      ['  ^encryption: {backend: ipsec}', 'spec.pools[0].encryption', 'changes nothing: every field it sets matches spec.encryption; remove it'],
      ['  ^encryption: {espProposals', 'spec.links[0].encryption', 'changes nothing: the pools already get this encryption without it; remove the entry'],
      [
        ['pools: ^[edge, dc]', 1],
        'spec.links[1].pools',
        'no tunnel joins these two pools (the pair is denied, both are behind NAT and talk through a relay, or in hub mode neither is the hub), so this entry has no effect',
      ],
    ]);
  });
});

describe('topology meaning: election', () => {
  it('refuses preempt with sticky (explicit or by default)', () => {
    expectErrors(doc({ election: 'preempt: true', pools: [pool('cloud'), pool('edge')] }), [
      [
        'preempt: ^true',
        'spec.election.preempt',
        'preempt: true moves back to the preferred gateway, but sticky defaults to true and keeps the current one; add sticky: false to use preempt',
      ],
    ]);
    expectErrors(doc({ election: 'sticky: true\npreempt: true', pools: [pool('cloud'), pool('edge')] }), [
      ['preempt: ^true', 'spec.election.preempt', 'preempt: true moves back to the preferred gateway while sticky: true keeps the current one; set sticky: false to use preempt'],
    ]);
    const topo = expectValid(doc({ election: 'sticky: false\npreempt: true', pools: [pool('cloud'), pool('edge')] }));
    assert.deepEqual([topo.election.sticky, topo.election.preempt], [false, true]);
  });

  it('refuses a zero heartbeat timeout and malformed durations', () => {
    expectErrors(doc({ election: 'heartbeatTimeout: 0s\nminHealthy: 30 seconds', pools: [pool('cloud'), pool('edge')] }), [
      ['heartbeatTimeout: ^0s', 'spec.election.heartbeatTimeout', 'must be at least 1s'],
      ['minHealthy: ^30 seconds', 'spec.election.minHealthy', 'must be a duration such as 30s, 2m, 1m30s or 500ms (whole numbers with units h, m, s, ms, largest first)'],
    ]);
  });
});

describe('topology: every error at once', () => {
  it('reports all errors of a broken file, sorted by position', () => {
    const t = doc({
      encryption: 'encryption:\n  backend: none\n',
      connectivity: 'mode: hub\nhub: nowhere',
      pools: [pool('cloud', 'relay: cloud'), pool('cloud', `${NAT}\nrelay: edge`)],
    });
    const r = loadTopology(t, FILE);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.ok(r.errors.length >= 4, `got ${r.errors.length}`);
    for (let i = 1; i < r.errors.length; i++) {
      const [p, q] = [r.errors[i - 1], r.errors[i]];
      assert.ok(p.line < q.line || (p.line === q.line && p.col <= q.col), 'sorted by position');
    }
  });
});
