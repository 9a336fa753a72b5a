// The shape check and YAML parsing: plain messages at the most specific node, and no value from the file echoed.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatTopologyError, loadTopology } from '../../src/topology/index.ts';
import { doc, expectErrors, FILE, HEAD, pool, PSK } from './topology-helpers.ts';

describe('topology YAML', () => {
  it('reports YAML syntax errors at YAML\'s own position', () => {
    const text = 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nspec:\n  pools: [a, b\n';
    const r = loadTopology(text, FILE);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors.length, 1);
    assert.equal(
      formatTopologyError(r.errors[0]),
      't.yaml:5:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    );
  });

  it('refuses duplicate keys', () => {
    const r = loadTopology(`${HEAD}  pools: []\n  pools: []\n`, FILE);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(r.errors.map(formatTopologyError), ['t.yaml:7:3: invalid YAML: a key appears twice in the same mapping; keep one']);
  });

  it('refuses more than one document, at the second "---"', () => {
    const text = `${doc({ pools: [pool('cloud'), pool('edge')] })}---\n${doc({ pools: [pool('cloud'), pool('edge')] })}`;
    const r = loadTopology(text, FILE);
    assert.equal(r.ok, false);
    if (r.ok) return;
    const line = text.split('\n').indexOf('---') + 1;
    assert.deepEqual(r.errors.map(formatTopologyError), [
      `t.yaml:${line}:1: the file holds 2 YAML documents; a topology file holds exactly one: remove the extra "---" documents or move them to files of their own`,
    ]);
  });

  it('refuses an empty file and a document that is not a mapping', () => {
    for (const text of ['', '# only a comment\n', '---\n']) {
      const r = loadTopology(text, FILE);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.deepEqual(r.errors.map(formatTopologyError), [
        't.yaml:1:1: the file is empty; write a Topology with apiVersion, kind, metadata and spec (see topology/example.yaml)',
      ]);
    }
    expectErrors('just a string\n', [['^just', '', 'the document must be a mapping with apiVersion, kind, metadata and spec']]);
  });
});

describe('topology schema', () => {
  it('refuses a wrong apiVersion and kind, and missing required fields at their parent\'s key', () => {
    const text = 'apiVersion: corvid.dev/v1\nkind: Topo\nmetadata:\n  labels: {a: b}\nspec:\n  pools:\n    - name: cloud\n      gateways: [{node: c1}]\n';
    expectErrors(text, [
      ['apiVersion: ^corvid.dev/v1', 'apiVersion', 'must be corvid.dev/v1alpha1'],
      ['kind: ^Topo', 'kind', 'must be Topology'],
      ['^metadata:', 'metadata', 'add the required field "name"'],
      ['^spec:', 'spec.encryption', 'backend ipsec needs a pre-shared key: add pskSecretRef {name, key} naming the Secret that holds it (Corvid has no built-in key)'],
      ['- ^name: cloud', 'spec.pools[0]', 'add the required field "nodeSelector"'],
    ]);
  });

  it('refuses unknown fields at their key, with a spelling suggestion', () => {
    const t = doc({ pools: [pool('cloud', 'behindNat: true'), pool('edge')], other: 'conectivity: {mode: mesh}' });
    expectErrors(t, [
      ['^conectivity', 'spec.conectivity', 'unknown field; did you mean "connectivity"? Fix the spelling or remove it (allowed here: encryption, connectivity, election, allowEmpty, podSubnets, nodeAddresses, memberVxlan, pools, links)'],
      [
        '^behindNat',
        'spec.pools[0].behindNat',
        'unknown field; did you mean "behindNAT"? Fix the spelling or remove it (allowed here: name, nodeSelector, gateways, behindNAT, relay, mtu, memberRouting, encryption)',
      ],
    ]);
  });

  it('never echoes a secret written into the file', () => {
    const secret = 'hunter2-very-secret';
    const t = doc({
      encryption: `encryption:\n  psk: ${secret}\n  pskSecretRef: {name: corvid-psk, key: psk, value: ${secret}}\n`,
      pools: [
        pool('cloud', `encryption:\n  pskSecretRef: ${secret}`),
        pool('edge', `encryption:\n  backend: ${secret}\n  pskSecretRef: {name: "${secret}!", key: 12345}`),
      ],
      links: `- pools: [cloud, edge]\n  encryption: {key: ${secret}}\n`,
    });
    const r = loadTopology(t, FILE);
    assert.equal(r.ok, false);
    if (r.ok) return;
    const text = r.errors.map(formatTopologyError).join('\n');
    assert.ok(!text.includes('hunter2'), text);
    assert.ok(!text.includes('12345'), text);
    const secretsMsg =
      'secrets never go in the topology file: remove this field, keep the pre-shared key in a Kubernetes Secret and point encryption.pskSecretRef {name, key} at it';
    expectErrors(t, [
      ['^psk: hunter2', 'spec.encryption.psk', secretsMsg],
      ['^value:', 'spec.encryption.pskSecretRef.value', 'unknown field; remove it or fix its spelling (allowed here: name, key)'],
      ['pskSecretRef: ^hunter2', 'spec.pools[0].encryption.pskSecretRef', 'must be a mapping of fields'],
      ['backend: ^hunter2', 'spec.pools[1].encryption.backend', 'must be one of: ipsec, wireguard, none'],
      [
        '{name: ^"hunter2',
        'spec.pools[1].encryption.pskSecretRef.name',
        "must be a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' or '.', each dot-separated part starting and ending with a letter or digit",
      ],
      ['key: ^12345', 'spec.pools[1].encryption.pskSecretRef.key', 'must be a string; put the value in quotes'],
      ['{^key: hunter2', 'spec.links[0].encryption.key', secretsMsg],
    ]);
  });

  it('explains types, enums, patterns and bounds without repeating the value', () => {
    const t = doc({
      connectivity: 'mode: star',
      election: 'replicas: 1.5\nsticky: "yes"',
      pools: [
        '- name: Cloud_1\n  nodeSelector: {matchLabels: {"bad key!": ok, good: "bad value!"}}\n  gateways: {node: c1}',
        pool('edge', 'behindNAT: yes'),
      ],
      links: '- pools: [edge]\n  encryption: {ikeProposals: []}\n',
    });
    expectErrors(t, [
      ['mode: ^star', 'spec.connectivity.mode', 'must be one of: mesh, hub'],
      ['replicas: ^1.5', 'spec.election.replicas', 'must be a whole number from 1 to 16'],
      ['sticky: ^"yes"', 'spec.election.sticky', 'must be true or false'],
      ['name: ^Cloud_1', 'spec.pools[0].name', "must be a DNS-1123 label: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit"],
      [
        '{^"bad key!"',
        'spec.pools[0].nodeSelector.matchLabels[this key]',
        "must be a valid label key: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
      ],
      [
        'good: ^"bad value!"',
        'spec.pools[0].nodeSelector.matchLabels.good',
        "must be a label value: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
      ],
      ['gateways: ^{node: c1}', 'spec.pools[0].gateways', 'must be a list'],
      ['behindNAT: ^yes', 'spec.pools[1].behindNAT', 'must be true or false'],
      ['pools: ^[edge]', 'spec.links[0].pools', 'must name exactly two pools, e.g. [cloud, factory]'],
      ['ikeProposals: ^[]', 'spec.links[0].encryption.ikeProposals', 'must list at least one proposal'],
    ]);
  });

  it('points at the key of an empty value', () => {
    const t = `${HEAD}  ${PSK.replace('\n  ', '\n    ')}  pools:\n`;
    expectErrors(t, [['^pools:', 'spec.pools', 'is empty; write a list here']]);
  });
});
