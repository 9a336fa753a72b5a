import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGraph } from '../../src/graph/model.ts';
import type { NetworkGraph } from '../../src/graph/model.ts';
import { layoutGraph, textBox } from '../../src/graph/layout.ts';
import type { Layout, Rect } from '../../src/graph/layout.ts';
import { renderSvg } from '../../src/graph/svg.ts';
import { renderDot } from '../../src/graph/dot.ts';
import { renderMermaid } from '../../src/graph/mermaid.ts';
import { exampleTopology, generatedTopology } from './graph-fixtures.ts';

function inside(inner: Rect, outer: Rect, slack = 0.5): boolean {
  return inner.x >= outer.x - slack && inner.y >= outer.y - slack && inner.x + inner.w <= outer.x + outer.w + slack && inner.y + inner.h <= outer.y + outer.h + slack;
}

function overlap(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function checkGeometry(layout: Layout): void {
  const canvas = { x: 0, y: 0, w: layout.width, h: layout.height };
  for (const t of [...layout.header, ...layout.legend.map((l) => l.label)]) {
    assert.ok(inside(textBox(t), canvas), `header text "${t.text}" leaves the canvas`);
  }
  for (const b of layout.boxes) {
    assert.ok(inside(b, canvas), `pool ${b.pool.name} leaves the canvas`);
    for (const t of b.texts) assert.ok(inside(textBox(t), b), `text "${t.text}" leaves the box of ${b.pool.name}`);
    for (const t of layout.header) assert.ok(!overlap(textBox(t), b), `header text "${t.text}" overlaps pool ${b.pool.name}`);
  }
  for (let i = 0; i < layout.boxes.length; i++) {
    for (let j = i + 1; j < layout.boxes.length; j++) {
      assert.ok(!overlap(layout.boxes[i], layout.boxes[j]), `pools ${layout.boxes[i].pool.name} and ${layout.boxes[j].pool.name} overlap`);
    }
  }
  // Texts inside one box do not overlap each other.
  for (const b of layout.boxes) {
    const boxes = b.texts.map(textBox);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) assert.ok(!overlap(boxes[i], boxes[j]), `texts overlap in ${b.pool.name}: "${b.texts[i].text}" / "${b.texts[j].text}"`);
    }
  }
}

function graphOf(n: number, mode: 'mesh' | 'hub' = 'mesh'): NetworkGraph {
  return buildGraph({ topology: generatedTopology(n, mode), gateways: [] });
}

test('example: edges are direct, relayed via the relay, or denied', () => {
  const g = buildGraph({ topology: exampleTopology(), gateways: [] });
  const edge = (a: string, b: string) => g.edges.find((e) => e.a === a && e.b === b);
  assert.deepEqual(edge('cloud', 'factory-lyon'), { a: 'cloud', b: 'factory-lyon', kind: 'direct' });
  assert.deepEqual(edge('factory-lyon', 'store-berlin'), { a: 'factory-lyon', b: 'store-berlin', kind: 'denied' });
  assert.deepEqual(edge('factory-lyon', 'store-munich'), { a: 'factory-lyon', b: 'store-munich', kind: 'relayed', via: ['cloud'] });
  assert.equal(g.edges.length, 10);
  assert.deepEqual(g.pools.map((p) => p.name), ['cloud', 'factory-lyon', 'store-berlin', 'store-munich', 'warehouse-oslo']);
  assert.ok(g.pools.every((p) => p.gateways.every((gw) => !gw.active)));
});

for (const [n, mode] of [[1, 'mesh'], [2, 'mesh'], [5, 'mesh'], [5, 'hub'], [12, 'hub'], [16, 'mesh'], [17, 'mesh'], [50, 'mesh'], [50, 'hub']] as const) {
  test(`layout of ${n} pools (${mode}): nothing leaves the canvas, boxes and labels do not overlap`, () => {
    checkGeometry(layoutGraph(graphOf(n, mode)));
  });
}

test('edges=all keeps every pair on the circle, also at 50 pools', () => {
  const g = graphOf(50);
  const all = layoutGraph(g, { edges: 'all' });
  checkGeometry(all);
  assert.equal(all.edges.length, g.edges.length);
  const auto = layoutGraph(g);
  assert.ok(auto.edges.every((e) => e.edge.kind === 'denied' || e.edge.kind === 'unreachable'));
});

test('SVG at 50 pools stays small, is deterministic and names every pool', () => {
  const g = graphOf(50);
  const svg = renderSvg(g);
  assert.equal(renderSvg(graphOf(50)), svg);
  assert.ok(svg.length < 150_000, `SVG is ${svg.length} bytes`);
  assert.ok(renderSvg(g, { edges: 'all' }).length < 600_000);
  for (const p of g.pools) assert.ok(svg.includes(`id="pool-${p.name}"`), p.name);
  assert.doesNotMatch(svg, /href=|url\(|@import|<script/i, 'self-contained: no external references');
});

test('DOT and Mermaid name every pool and gateway, one edge per pair', () => {
  const g = buildGraph({ topology: exampleTopology(), gateways: [] });
  const dot = renderDot(g);
  const mmd = renderMermaid(g);
  for (const p of g.pools) {
    assert.ok(dot.includes(`"pool/${p.name}"`));
    assert.ok(mmd.includes(`"${p.name}`));
    for (const gw of p.gateways) {
      assert.ok(dot.includes(`"gw/${p.name}/${gw.node}"`));
      assert.ok(mmd.includes(gw.node));
    }
  }
  assert.equal((dot.match(/ -- /g) ?? []).length, g.edges.length);
  assert.equal((mmd.match(/^  linkStyle /gm) ?? []).length, g.edges.length);
  assert.match(dot, /style=dashed, color="#cf222e", label="denied"/);
  assert.match(mmd, /-\.-\|"via cloud"\|/);
});
