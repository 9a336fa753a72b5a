// corvid import's conversion (src/migrate/raven-import.ts): Raven's Gateways as yurt-manager and raven-agent leave
// them (test/fixtures/raven) and the nodes' labels in; a topology that validates, whose rendered specs are the live
// ones as Raven reads them, and every setting it could not carry over listed, out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { formatNote, importRavenGateways, type ImportNote, type LabelledNode } from '../../src/migrate/raven-import.ts';
import { sameRavenSpec } from '../../src/migrate/raven-spec.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { plan } from '../../src/plan/index.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { REPO } from './cli-support.ts';

const FIXTURES = join(REPO, 'test', 'fixtures', 'raven');
const GATEWAYS = (parse(readFileSync(join(FIXTURES, 'gateways.yaml'), 'utf8')) as { items: Gateway[] }).items;
const NODES: LabelledNode[] = (parse(readFileSync(join(FIXTURES, 'nodes.yaml'), 'utf8')) as { items: { metadata: { name: string; labels: Record<string, string> } }[] }).items.map(
  (n) => ({ name: n.metadata.name, labels: n.metadata.labels }),
);
const OPTIONS = { name: 'imported', pskSecretRef: { name: 'corvid-psk', key: 'psk' } };

/** A Gateway as Raven leaves it: the webhook's selector and port, Go's omitempty. */
function raven(name: string, endpoints: Record<string, unknown>[], spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name, ...metadata },
    spec: {
      nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': name } },
      proxyConfig: { Replicas: 0 },
      tunnelConfig: { Replicas: 1 },
      endpoints: endpoints.map((e) => ({ type: 'tunnel', port: 4500, ...e })),
      ...spec,
    },
  } as unknown as Gateway;
}

function imported(gateways: Gateway[], nodes: LabelledNode[] = []) {
  const r = importRavenGateways(gateways, nodes, OPTIONS);
  assert.ok(r.ok, `import failed: ${JSON.stringify(r)}`);
  return r;
}

/** What `corvid render` (no nodes) writes for the text. */
function rendered(text: string): Gateway[] {
  const t = loadTopology(text, 'imported.yaml');
  assert.ok(t.ok, JSON.stringify(!t.ok && t.errors));
  return plan({ topology: t.topology, revision: 'r', nodes: [], health: {}, previous: [], now: '1970-01-01T00:00:00Z' }).gateways;
}

const about = (notes: ImportNote[], gateway: string | undefined) => notes.filter((n) => n.gateway === gateway).map((n) => `${n.kind}: ${n.message}`);

test('the fixture: one pool per Gateway with a nodeSelector and a tunnel endpoint, candidates in order', () => {
  const r = imported(GATEWAYS, NODES);
  assert.deepEqual(r.pools, ['gw-cloud', 'gw-factory', 'gw-hangzhou', 'gw-lb', 'gw-store']);
  const pools = r.document.spec.pools;
  assert.deepEqual(pools[0], {
    name: 'gw-cloud',
    nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': 'gw-cloud' } },
    gateways: [{ node: 'cloud-gw-1', publicIP: '203.0.113.10' }, { node: 'cloud-gw-2' }],
  });
  assert.deepEqual(pools[1], {
    name: 'gw-factory',
    nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': 'gw-factory' } },
    behindNAT: true,
    gateways: [{ node: 'factory-gw-1', publicIP: '198.51.100.20', publicPort: 31245 }, { node: 'factory-gw-2' }],
  });
  assert.deepEqual(r.document.spec.encryption, { pskSecretRef: { name: 'corvid-psk', key: 'psk' } });
  assert.equal(r.document.spec.connectivity, undefined);
  assert.deepEqual(r.warnings, []);
});

test('the fixture renders to the live specs, as Raven reads them, wherever nothing was listed', () => {
  const r = imported(GATEWAYS, NODES);
  const live = new Map(GATEWAYS.map((g) => [g.metadata.name, g]));
  for (const g of rendered(r.text)) {
    const same = sameRavenSpec(live.get(g.metadata.name)!.spec, g.spec);
    const listed = r.notes.some((n) => n.gateway === g.metadata.name && /corvid render's spec differs/.test(n.message));
    assert.equal(same, !listed, `${g.metadata.name}: the spec differs exactly when the notes say so`);
  }
  assert.deepEqual(
    rendered(r.text).filter((g) => sameRavenSpec(live.get(g.metadata.name)!.spec, g.spec)).map((g) => g.metadata.name),
    ['gw-cloud', 'gw-store'],
  );
});

test('the fixture: everything not carried over is listed, on the Gateway it belongs to', () => {
  const { notes } = imported(GATEWAYS, NODES);
  const hz = about(notes, 'gw-hangzhou').join('\n');
  assert.match(hz, /^dropped: proxy endpoints on hz-gw-1/m);
  assert.match(hz, /^dropped: exposeType PublicIP/m);
  assert.match(hz, /^dropped: proxyConfig Replicas, proxyHTTPPort, proxyHTTPSPort/m);
  assert.match(hz, /^dropped: annotations raven\.openyurt\.io\/extra-allowed-source-cidrs/m);
  assert.match(hz, /^changed: corvid render's spec differs from the live one, as Raven reads them, at .*spec\.exposeType \(live "PublicIP", Corvid none\)/m);
  assert.match(about(notes, 'gw-lb').join('\n'), /^dropped: exposeType LoadBalancer: .*LoadBalancer Services/m);
  assert.match(about(notes, 'gw-factory').join('\n'), /^dropped: the endpoint on node factory-gw-1: natType "Port restricted NAT"/m);
  assert.deepEqual(about(notes, 'gw-unlabelled').map((n) => n.split(':')[0]), ['not-imported']);
  assert.match(about(notes, 'gw-unlabelled')[0], /no spec\.nodeSelector.*raven\.openyurt\.io\/gateway: gw-unlabelled/);
  assert.match(about(notes, 'gw-proxy-only').join('\n'), /^not-imported: it has no tunnel endpoint/m);
  assert.deepEqual(about(notes, 'gw-cloud'), []);
  assert.deepEqual(about(notes, 'gw-store'), []);
  const whole = about(notes, undefined).join('\n');
  assert.match(whole, /gateway=gw-unlabelled \(unl-gw-1\) are in no imported pool/);
  assert.match(whole, /gateway=gw-proxy-only \(proxy-gw-1\) are in no imported pool/);
  assert.match(whole, /sorts last by name \(now gw-lb\).*add relay: gw-lb to gw-factory, gw-store/);
});

test('the file: it validates, holds every note as a comment above its pool or in the header, and no key', () => {
  const r = imported(GATEWAYS, NODES);
  const t = loadTopology(r.text, 'imported.yaml');
  assert.ok(t.ok);
  const before = (pool: string) => r.text.slice(0, r.text.indexOf(`- name: ${pool}\n`)).split('\n    - name:').at(-1)!;
  assert.match(before('gw-hangzhou'), /# - not carried over: proxy endpoints on hz-gw-1/);
  assert.match(before('gw-factory'), /# - not carried over: the endpoint on node factory-gw-1: natType/);
  assert.doesNotMatch(before('gw-store'), /#/);
  const header = r.text.slice(0, r.text.indexOf('apiVersion:'));
  assert.match(header, /^# Gateways not imported:\n# - gw-proxy-only: /m);
  assert.match(header, /^# - gw-unlabelled: it has no spec\.nodeSelector/m);
  assert.match(header, /^#   kubectl -n corvid-system create secret generic corvid-psk --from-literal=psk="\$\(openssl rand -base64 48\)"$/m);
  const comments = r.text
    .split('\n')
    .filter((l) => /^\s*#/.test(l))
    .map((l) => l.replace(/^\s*#/, ''))
    .join(' ')
    .replace(/\s+/g, ' ');
  for (const n of r.notes) assert.ok(comments.includes(n.message), `in the file: ${formatNote(n)}`);
  assert.ok(r.text.split('\n').every((l) => l.length <= 120 || l.startsWith('#   kubectl')), 'comment lines are wrapped');
});

test('the output does not depend on the order of the Gateways or nodes', () => {
  const a = imported(GATEWAYS, NODES);
  const b = imported([...GATEWAYS].reverse(), [...NODES].reverse());
  assert.equal(b.text, a.text);
  assert.deepEqual(b.notes, a.notes);
});

test('endpoint config: keys listed, values never written anywhere', () => {
  const r = imported([raven('gw-a', [{ nodeName: 'a1', config: { token: 'c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==', 'corvid.dev/priority': '0' } }])]);
  assert.match(about(r.notes, 'gw-a').join('\n'), /^dropped: the endpoint on node a1: config keys token \(Corvid's agent reads none of them; values not shown\)/m);
  assert.doesNotMatch(r.text + JSON.stringify(r.notes), /c2VjcmV0/);
});

test('endpoints: a proxy one is left out, a duplicate or another pool\'s node dropped, a bad publicIP left out, the order kept', () => {
  const r = imported([
    raven('gw-a', [{ nodeName: 'a2', publicIP: '203.0.113.1' }, { nodeName: 'a1', type: 'proxy', port: 10262 }, { nodeName: 'a1', publicIP: 'not-an-ip' }, { nodeName: 'a2' }]),
    raven('gw-b', [{ nodeName: 'a1' }, { nodeName: 'b1' }]),
  ]);
  assert.deepEqual(r.document.spec.pools.map((p) => p.gateways), [[{ node: 'a2', publicIP: '203.0.113.1' }, { node: 'a1' }], [{ node: 'b1' }]]);
  const a = about(r.notes, 'gw-a').join('\n');
  assert.match(a, /^dropped: the endpoint on node a1: publicIP "not-an-ip" is not an IPv4 or IPv6 address/m);
  assert.match(a, /^dropped: the endpoint on node a2: listed twice; the first one is kept/m);
  assert.match(a, /^dropped: proxy endpoints on a1/m);
  assert.match(about(r.notes, 'gw-b').join('\n'), /^dropped: the endpoint on node a1: the node is a gateway of gw-a already/m);
});

test('a port Corvid does not use, Replicas 0, disagreeing underNAT: carried over as Corvid can, and said', () => {
  const r = imported([
    raven('gw-a', [{ nodeName: 'a1', port: 4501 }], { tunnelConfig: { Replicas: 0 } }),
    raven('gw-b', [{ nodeName: 'b1', underNAT: true }, { nodeName: 'b2' }]),
    raven('gw-c', [{ nodeName: 'c1' }]),
  ]);
  const a = about(r.notes, 'gw-a').join('\n');
  assert.match(a, /^changed: the endpoint on node a1: Raven's tunnel listens on port 4501; Corvid's gateways use 4500/m);
  assert.match(a, /^changed: Raven elects no tunnel endpoint for this Gateway; Corvid elects one active gateway per pool/m);
  assert.match(a, /spec\.endpoints\[0\]\.port \(live 4501, Corvid 4500\), spec\.tunnelConfig\.Replicas \(live 0, Corvid 1\)/);
  assert.equal(r.document.spec.pools[1].behindNAT, true);
  assert.match(about(r.notes, 'gw-b').join('\n'), /^changed: its tunnel endpoints disagree on underNAT/m);
});

test('a Gateway Corvid cannot take: left out with the validator\'s reason, the others kept', () => {
  const r = imported([
    raven('gw.with.dots', [{ nodeName: 'd1' }]),
    raven('gw-a', [{ nodeName: 'a1' }]),
    // Raven never compares selectors; Corvid refuses a second pool that selects the same nodes.
    raven('gw-b', [{ nodeName: 'b1' }], { nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': 'gw-a' } } }),
    raven('gw-empty', [{ nodeName: 'e1' }], { nodeSelector: {} }),
    raven('gw-corvid', [{ nodeName: 'x1' }], {}, { labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 'edge' } }),
  ]);
  assert.deepEqual(r.pools, ['gw-a']);
  assert.match(about(r.notes, 'gw.with.dots').join('\n'), /^not-imported: corvid validate refuses it: name: must be a DNS-1123 label/m);
  assert.match(about(r.notes, 'gw-b').join('\n'), /^not-imported: corvid validate refuses it: nodeSelector/m);
  assert.match(about(r.notes, 'gw-empty').join('\n'), /^not-imported: its spec\.nodeSelector is empty/m);
  assert.match(about(r.notes, 'gw-corvid').join('\n'), /^not-imported: already managed by Corvid \(topology edge\)/m);
});

test('nodes: a pool that would hold other nodes than Raven\'s, and a node two pools select, are said', () => {
  const nodes: LabelledNode[] = [
    { name: 'a1', labels: { 'raven.openyurt.io/gateway': 'gw-a', site: 'x' } },
    { name: 'a2', labels: { 'raven.openyurt.io/gateway': 'gw-a' } },
    { name: 'b1', labels: { 'raven.openyurt.io/gateway': 'gw-b', site: 'x', tier: 'edge' } },
  ];
  const r = imported(
    [
      raven('gw-a', [{ nodeName: 'a1' }], { nodeSelector: { matchLabels: { site: 'x' } } }),
      raven('gw-b', [{ nodeName: 'b1' }], { nodeSelector: { matchLabels: { tier: 'edge' } } }),
    ],
    nodes,
  );
  const a = about(r.notes, 'gw-a').join('\n');
  assert.match(a, /^changed: Corvid's pool is the nodes its nodeSelector selects, yurt-manager's the nodes labelled raven\.openyurt\.io\/gateway=gw-a: only Corvid's has b1; only Raven's has a2$/m);
  assert.match(about(r.notes, 'gw-b').join('\n'), /^changed: node b1 is selected by pool gw-a too; Corvid puts it in gw-a/m);
});

test('every pool behind NAT: a rule denies every pair (none can relay), and the note says why', () => {
  const r = imported([raven('gw-a', [{ nodeName: 'a1', underNAT: true }]), raven('gw-b', [{ nodeName: 'b1', underNAT: true }])]);
  assert.deepEqual(r.document.spec.connectivity, { rules: [{ action: 'deny', pools: ['*', '*'] }] });
  assert.match(about(r.notes, undefined).join('\n'), /every pool is behind NAT/);
  assert.ok(loadTopology(r.text, 'x.yaml').ok);
});

test('nothing importable, or a name Corvid refuses: no file, and why', () => {
  const none = importRavenGateways([raven('gw-p', [{ nodeName: 'p1', type: 'proxy' }])], [], OPTIONS);
  assert.equal(none.ok, false);
  assert.match(!none.ok ? none.errors.join('\n') : '', /no Gateway can be imported/);
  const badName = importRavenGateways([raven('gw-a', [{ nodeName: 'a1' }])], [], { ...OPTIONS, name: 'Not_A_Name' });
  assert.equal(badName.ok, false);
  assert.match(!badName.ok ? badName.errors.join('\n') : '', /^metadata\.name: /m);
});
