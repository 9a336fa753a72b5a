// Geometry of the network drawing: pool boxes on a circle (the hub, if any, in the middle), a header with the title
// and legend, and every text item with its estimated extent so tests can check that nothing leaves the canvas.
// Pure and deterministic: the same graph gives the same numbers.

import type { GraphEdge, GraphGateway, GraphPool, NetworkGraph } from './model.ts';

/** Monospace everywhere, so widths can be estimated without a font engine. */
export const FONT_FAMILY = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace";
/** Advance of one monospace character as a fraction of the font size (0.6 for DejaVu Sans Mono; rounded up). */
export const CHAR_WIDTH_EM = 0.62;
export const MAX_LABEL_CHARS = 34;

const TITLE_SIZE = 13;
const TEXT_SIZE = 11;
const ROW_H = 17;
const PAD = 9;
const DOT_W = 16;
const GAP = 36;
const MARGIN = 24;

export interface Point {
  x: number;
  y: number;
}

export interface TextItem {
  x: number;
  y: number;
  text: string;
  size: number;
  bold?: boolean;
  anchor: 'start' | 'middle' | 'end';
  fill: string;
  /** Full text when `text` was shortened. */
  full?: string;
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface PoolBox extends Rect {
  pool: GraphPool;
  cx: number;
  cy: number;
  /** y of each gateway row's centre line, in pool.gateways order. */
  rows: number[];
  texts: TextItem[];
}

export interface EdgePath {
  edge: GraphEdge;
  /** SVG path data. */
  d: string;
}

export interface Layout {
  width: number;
  height: number;
  header: TextItem[];
  legend: LegendItem[];
  boxes: PoolBox[];
  edges: EdgePath[];
  /** Thinner, lighter edges for big graphs. */
  dense: boolean;
}

export interface LegendItem {
  kind: 'edge-direct' | 'edge-relayed' | 'edge-denied' | 'edge-unreachable' | 'gw-active' | 'gw-candidate' | 'health';
  x: number;
  y: number;
  colour?: string;
  label: TextItem;
}

export function textWidth(text: string, size: number): number {
  return [...text].length * size * CHAR_WIDTH_EM;
}

export function textBox(t: TextItem): Rect {
  const w = textWidth(t.text, t.size);
  const x = t.anchor === 'start' ? t.x : t.anchor === 'middle' ? t.x - w / 2 : t.x - w;
  // Baseline at y: ascent ~0.8em above, descent ~0.25em below.
  return { x, y: t.y - t.size * 0.8, w, h: t.size * 1.05 };
}

export function shorten(text: string, max = MAX_LABEL_CHARS): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

export const COLOURS = {
  text: '#1f2328',
  muted: '#57606a',
  poolFill: '#f6f8fa',
  poolStroke: '#8c959f',
  hubStroke: '#0969da',
  activeFill: '#dafbe1',
  active: '#1a7f37',
  direct: '#57606a',
  relayed: '#0969da',
  denied: '#cf222e',
  unreachable: '#bf8700',
  healthy: '#1a7f37',
  degraded: '#bf8700',
  unhealthy: '#cf222e',
  unknown: '#8c959f',
} as const;

/** A gateway's colour: its health when drawn live, otherwise active or candidate. */
export function gatewayColour(g: GraphGateway, live: boolean): string {
  if (!live) return g.active ? COLOURS.active : COLOURS.muted;
  switch (g.health) {
    case 'healthy':
      return COLOURS.healthy;
    case 'degraded':
      return COLOURS.degraded;
    case 'unhealthy':
      return COLOURS.unhealthy;
    default:
      return COLOURS.unknown;
  }
}

function subtitle(p: GraphPool): string {
  const parts: string[] = [];
  if (p.hub) parts.push('hub');
  parts.push(p.behindNAT ? 'behind NAT' : 'public');
  if (p.relay) parts.push(`relay ${p.relay}`);
  if (p.nodeCount !== undefined) parts.push(`${p.nodeCount} node${p.nodeCount === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

function gatewayLabel(g: GraphPool['gateways'][number]): string {
  const parts = [g.node];
  if (g.publicIP) parts.push(g.publicIP);
  return parts.join(' ');
}

function gatewayTag(g: GraphPool['gateways'][number], elected: boolean): string {
  return g.active ? 'active' : elected ? 'standby' : 'candidate';
}

/** Whether the pool's election is known (some gateway active); otherwise all are plain candidates. */
function elected(p: GraphPool): boolean {
  return p.gateways.some((g) => g.active);
}

interface BoxSize {
  w: number;
  h: number;
}

function boxSize(p: GraphPool): BoxSize {
  const title = textWidth(shorten(p.name), TITLE_SIZE);
  const sub = textWidth(shorten(subtitle(p), MAX_LABEL_CHARS + 6), TEXT_SIZE);
  const rows = p.gateways.map(
    (g) => DOT_W + textWidth(shorten(gatewayLabel(g)), TEXT_SIZE) + 8 + textWidth(gatewayTag(g, elected(p)), TEXT_SIZE),
  );
  const w = Math.max(150, title, sub, ...rows) + 2 * PAD;
  const h = PAD + TITLE_SIZE + 6 + TEXT_SIZE + 6 + Math.max(1, p.gateways.length) * ROW_H + PAD - 4;
  return { w: Math.ceil(w), h: Math.ceil(h) };
}

function overlaps(a: Rect, b: Rect, gap: number): boolean {
  return a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
}

function r1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Where the segment from the box centre towards `to` leaves the box (plus a small gap). */
function exitPoint(b: Rect & { cx: number; cy: number }, to: Point): Point {
  const dx = to.x - b.cx;
  const dy = to.y - b.cy;
  if (dx === 0 && dy === 0) return { x: b.cx, y: b.cy };
  const hw = b.w / 2 + 3;
  const hh = b.h / 2 + 3;
  const t = Math.min(dx === 0 ? Infinity : hw / Math.abs(dx), dy === 0 ? Infinity : hh / Math.abs(dy));
  return { x: b.cx + dx * t, y: b.cy + dy * t };
}

function placeOnCircle(sizes: BoxSize[], centre: BoxSize | undefined): { centres: Point[]; centreRect?: Rect } {
  const n = sizes.length;
  const maxW = Math.max(0, ...sizes.map((s) => s.w));
  const maxH = Math.max(0, ...sizes.map((s) => s.h));
  if (n === 0) return { centres: [], centreRect: centre ? { x: -centre.w / 2, y: -centre.h / 2, ...centre } : undefined };
  if (n === 1 && !centre) return { centres: [{ x: 0, y: 0 }] };
  let radius = n === 1 ? 0 : (maxW + GAP) / (2 * Math.sin(Math.PI / n));
  if (centre) radius = Math.max(radius, (centre.w + maxW) / 2 + GAP * 2, (centre.h + maxH) / 2 + GAP * 2);
  for (let attempt = 0; attempt < 200; attempt++) {
    const centres = sizes.map((_, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / n;
      return { x: radius * Math.cos(angle), y: radius * Math.sin(angle) };
    });
    const rects: Rect[] = centres.map((c, i) => ({ x: c.x - sizes[i].w / 2, y: c.y - sizes[i].h / 2, ...sizes[i] }));
    const centreRect = centre ? { x: -centre.w / 2, y: -centre.h / 2, ...centre } : undefined;
    if (centreRect) rects.push(centreRect);
    let clash = false;
    for (let i = 0; i < rects.length && !clash; i++) {
      for (let j = i + 1; j < rects.length && !clash; j++) clash = overlaps(rects[i], rects[j], GAP / 2);
    }
    if (!clash) return { centres, centreRect };
    radius = radius * 1.08 + 4;
  }
  throw new Error('layout: could not place pools without overlap');
}

export interface LayoutOptions {
  /**
   * auto: up to DENSE_POOLS pools, pools on a circle with every pair drawn (in hub mode the spoke-to-spoke pairs,
   * which all go through the hub, are left implicit); above that, pools on a grid and only the exceptions drawn
   * (denied pairs, pairs without a path, tunnels reported down), listed in a panel too.
   * all: always the circle with every pair drawn.
   */
  edges?: 'auto' | 'all';
}

/** Above this many pools, `auto` switches to the grid. */
export const DENSE_POOLS = 16;
const EXCEPTIONS_LISTED = 40;

function isException(e: GraphEdge): boolean {
  return e.kind === 'denied' || e.kind === 'unreachable' || (e.kind === 'direct' && e.health === 'down');
}

function placeOnGrid(sizes: BoxSize[]): Point[] {
  const n = sizes.length;
  const w = Math.max(0, ...sizes.map((s) => s.w));
  const h = Math.max(0, ...sizes.map((s) => s.h));
  // Roughly 4:3 overall.
  const cols = Math.max(1, Math.round(Math.sqrt((n * (h + GAP) * 4) / ((w + GAP) * 3))));
  return sizes.map((_, i) => ({ x: (i % cols) * (w + GAP) + w / 2, y: Math.floor(i / cols) * (h + GAP) + h / 2 }));
}

/** Lay out the graph. Pools keep the graph's (name) order, the hub first (centre of the circle, or first cell). */
export function layoutGraph(g: NetworkGraph, opts: LayoutOptions = {}): Layout {
  const hubPool = g.hub !== undefined ? g.pools.find((p) => p.name === g.hub) : undefined;
  const grid = (opts.edges ?? 'auto') === 'auto' && g.pools.length > DENSE_POOLS;
  const rawBoxes: { pool: GraphPool; rect: Rect }[] = [];
  if (grid) {
    const ordered = hubPool ? [hubPool, ...g.pools.filter((p) => p !== hubPool)] : g.pools;
    const sizes = ordered.map(boxSize);
    const w = Math.max(0, ...sizes.map((s) => s.w));
    for (const s of sizes) s.w = w;
    const centres = placeOnGrid(sizes);
    ordered.forEach((pool, i) =>
      rawBoxes.push({ pool, rect: { x: centres[i].x - w / 2, y: centres[i].y - sizes[i].h / 2, w, h: sizes[i].h } }),
    );
  } else {
    const ring = g.pools.filter((p) => p !== hubPool);
    const sizes = ring.map(boxSize);
    // Uniform width on the ring reads better and keeps spacing regular.
    const ringW = Math.max(0, ...sizes.map((s) => s.w));
    for (const s of sizes) s.w = ringW;
    const placed = placeOnCircle(sizes, hubPool ? boxSize(hubPool) : undefined);
    ring.forEach((pool, i) =>
      rawBoxes.push({
        pool,
        rect: { x: placed.centres[i].x - sizes[i].w / 2, y: placed.centres[i].y - sizes[i].h / 2, w: sizes[i].w, h: sizes[i].h },
      }),
    );
    if (hubPool && placed.centreRect) rawBoxes.push({ pool: hubPool, rect: placed.centreRect });
  }
  const drawn = g.edges.filter((e) => {
    if (opts.edges === 'all') return true;
    if (grid) return isException(e);
    // Hub mode: spoke-to-spoke pairs go through the hub; the star of direct edges already says so.
    return !(g.mode === 'hub' && e.kind === 'relayed');
  });
  const notes: string[] = [];
  if (grid) {
    notes.push(
      g.mode === 'hub'
        ? 'every spoke has a tunnel to the hub and reaches the others through it; only exceptions are drawn'
        : 'all other pairs: direct tunnels, NAT pools through their relay; only exceptions are drawn',
    );
  } else if (g.mode === 'hub' && opts.edges !== 'all' && g.edges.some((e) => e.kind === 'relayed')) {
    notes.push('spokes reach each other through the hub (not drawn)');
  }
  // Exceptions panel (grid only): one line per exceptional pair.
  const exceptions = grid ? g.edges.filter(isException) : [];
  const panelLines = exceptions.slice(0, EXCEPTIONS_LISTED).map((e) => exceptionText(e));
  if (exceptions.length > EXCEPTIONS_LISTED) panelLines.push(`… and ${exceptions.length - EXCEPTIONS_LISTED} more`);

  // Header: title line, then the legend in one or more rows.
  const dense = !grid && g.pools.length > 10;
  const minX = Math.min(0, ...rawBoxes.map((b) => b.rect.x));
  const maxX = Math.max(0, ...rawBoxes.map((b) => b.rect.x + b.rect.w));
  const minY = Math.min(0, ...rawBoxes.map((b) => b.rect.y));
  const maxY = Math.max(0, ...rawBoxes.map((b) => b.rect.y + b.rect.h));
  const legendSpecs: { kind: LegendItem['kind']; text: string; colour?: string }[] = [
    { kind: 'edge-direct', text: 'direct tunnel' },
    { kind: 'edge-relayed', text: 'relayed' },
    { kind: 'edge-denied', text: 'denied' },
  ];
  if (g.edges.some((e) => e.kind === 'unreachable')) legendSpecs.push({ kind: 'edge-unreachable', text: 'no path' });
  legendSpecs.push({ kind: 'gw-active', text: 'active gateway' }, { kind: 'gw-candidate', text: 'candidate' });
  if (g.live) {
    legendSpecs.push(
      { kind: 'health', text: 'healthy', colour: COLOURS.healthy },
      { kind: 'health', text: 'degraded', colour: COLOURS.degraded },
      { kind: 'health', text: 'unhealthy', colour: COLOURS.unhealthy },
      { kind: 'health', text: 'unknown', colour: COLOURS.unknown },
    );
  }
  const itemWidths = legendSpecs.map((s) => 34 + textWidth(s.text, TEXT_SIZE) + 18);
  const graphW = maxX - minX;
  const titleText = shorten(g.title, 60);
  const c = counts(g);
  const summary = `${c.pools} pool${c.pools === 1 ? '' : 's'} · ${g.mode === 'hub' ? `hub ${g.hub ?? '?'}` : 'mesh'} · ${c.direct} direct · ${c.relayed} relayed · ${c.denied} denied${c.unreachable ? ` · ${c.unreachable} without path` : ''}${g.live ? ' · live' : ''}`;
  const headerLines = [summary, ...notes];
  const headerMinW = Math.max(textWidth(titleText, 16), ...headerLines.map((l) => textWidth(l, TEXT_SIZE)));
  const panelW = panelLines.length ? Math.max(...panelLines.map((l) => textWidth(l, TEXT_SIZE)), textWidth('Exceptions', TITLE_SIZE)) : 0;
  const legendRowMax = Math.max(graphW, headerMinW, 520);
  const legendRows: number[][] = [[]];
  let rowW = 0;
  itemWidths.forEach((w, i) => {
    if (rowW + w > legendRowMax && legendRows[legendRows.length - 1].length > 0) {
      legendRows.push([]);
      rowW = 0;
    }
    legendRows[legendRows.length - 1].push(i);
    rowW += w;
  });
  const legendW = Math.max(...legendRows.map((r) => r.reduce((s, i) => s + itemWidths[i], 0)));
  const contentW = Math.max(graphW, legendW, headerMinW, panelW);
  const width = Math.ceil(contentW + 2 * MARGIN);
  const linesH = headerLines.length * (TEXT_SIZE + 5);
  const headerH = 16 + 8 + linesH + 8 + legendRows.length * 20 + 10;
  const panelH = panelLines.length ? GAP + TITLE_SIZE + 6 + panelLines.length * (TEXT_SIZE + 5) : 0;
  const height = Math.ceil(MARGIN + headerH + (maxY - minY) + panelH + MARGIN);
  // Centre the drawing horizontally.
  const ox = MARGIN + (contentW - graphW) / 2 - minX;
  const oy = MARGIN + headerH - minY;

  const header: TextItem[] = [{ x: MARGIN, y: MARGIN + 14, text: titleText, size: 16, bold: true, anchor: 'start', fill: COLOURS.text }];
  if (titleText !== g.title) header[0].full = g.title;
  headerLines.forEach((l, i) =>
    header.push({ x: MARGIN, y: MARGIN + 16 + 8 + (i + 1) * (TEXT_SIZE + 5) - 5, text: l, size: TEXT_SIZE, anchor: 'start', fill: COLOURS.muted }),
  );
  const legend: LegendItem[] = [];
  legendRows.forEach((row, r) => {
    let x = MARGIN;
    const y = MARGIN + 16 + 8 + linesH + 8 + r * 20 + 6;
    for (const i of row) {
      const s = legendSpecs[i];
      legend.push({
        kind: s.kind,
        x,
        y,
        colour: s.colour,
        label: { x: x + 34, y: y + 4, text: s.text, size: TEXT_SIZE, anchor: 'start', fill: COLOURS.text },
      });
      x += itemWidths[i];
    }
  });
  if (panelLines.length) {
    let y = MARGIN + headerH + (maxY - minY) + GAP + TITLE_SIZE;
    header.push({ x: MARGIN, y, text: 'Exceptions', size: TITLE_SIZE, bold: true, anchor: 'start', fill: COLOURS.text });
    y += 6;
    for (const l of panelLines) {
      y += TEXT_SIZE + 5;
      header.push({ x: MARGIN, y, text: l, size: TEXT_SIZE, anchor: 'start', fill: COLOURS.text });
    }
  }

  const boxes: PoolBox[] = rawBoxes
    .map(({ pool, rect }) => poolBox(pool, { x: r1(rect.x + ox), y: r1(rect.y + oy), w: rect.w, h: rect.h }))
    .sort((a, b) => (a.pool.name < b.pool.name ? -1 : a.pool.name > b.pool.name ? 1 : 0));
  const byName = new Map(boxes.map((b) => [b.pool.name, b]));
  const edges: EdgePath[] = [];
  for (const e of drawn) {
    const a = byName.get(e.a);
    const b = byName.get(e.b);
    if (!a || !b) continue;
    edges.push({ edge: e, d: grid ? arcPath(a, b) : edgePath(e, a, b, byName) });
  }
  return { width, height, header, legend, boxes, edges, dense };
}

function exceptionText(e: GraphEdge): string {
  switch (e.kind) {
    case 'denied':
      return `${e.a} ↔ ${e.b}: denied`;
    case 'unreachable':
      return `${e.a} ↔ ${e.b}: no path`;
    default:
      return `${e.a} ↔ ${e.b}: tunnel down`;
  }
}

/** On the grid: an arc bulging to one side, so a pair's line is not hidden along a row or column of boxes. */
function arcPath(a: PoolBox, b: PoolBox): string {
  const ca = { x: a.cx, y: a.cy };
  const cb = { x: b.cx, y: b.cy };
  const mx = (ca.x + cb.x) / 2;
  const my = (ca.y + cb.y) / 2;
  const dx = cb.x - ca.x;
  const dy = cb.y - ca.y;
  // Perpendicular bulge of a quarter of the distance (boxes on one row or column would hide a straight line).
  const c = { x: mx - dy * 0.25, y: my + dx * 0.25 };
  const start = exitPoint(a, c);
  const end = exitPoint(b, c);
  return `M${fmt(start)} Q${fmt(c)} ${fmt(end)}`;
}

function counts(g: NetworkGraph): { pools: number; direct: number; relayed: number; denied: number; unreachable: number } {
  const c = { pools: g.pools.length, direct: 0, relayed: 0, denied: 0, unreachable: 0 };
  for (const e of g.edges) c[e.kind]++;
  return c;
}

function poolBox(pool: GraphPool, rect: Rect): PoolBox {
  const texts: TextItem[] = [];
  const title = shorten(pool.name);
  const t: TextItem = { x: rect.x + PAD, y: rect.y + PAD + TITLE_SIZE - 2, text: title, size: TITLE_SIZE, bold: true, anchor: 'start', fill: COLOURS.text };
  if (title !== pool.name) t.full = pool.name;
  texts.push(t);
  const subFull = subtitle(pool);
  const sub = shorten(subFull, MAX_LABEL_CHARS + 6);
  const s: TextItem = { x: rect.x + PAD, y: t.y + 6 + TEXT_SIZE, text: sub, size: TEXT_SIZE, anchor: 'start', fill: COLOURS.muted };
  if (sub !== subFull) s.full = subFull;
  texts.push(s);
  const rows: number[] = [];
  let y = s.y + 6 + ROW_H / 2;
  for (const g of pool.gateways) {
    rows.push(y);
    const fullLabel = gatewayLabel(g);
    const label = shorten(fullLabel);
    const item: TextItem = {
      x: rect.x + PAD + DOT_W,
      y: y + 4,
      text: label,
      size: TEXT_SIZE,
      bold: g.active,
      anchor: 'start',
      fill: g.active ? COLOURS.text : COLOURS.muted,
    };
    if (label !== fullLabel) item.full = fullLabel;
    texts.push(item);
    texts.push({
      x: rect.x + rect.w - PAD,
      y: y + 4,
      text: gatewayTag(g, elected(pool)),
      size: TEXT_SIZE,
      bold: g.active,
      anchor: 'end',
      fill: g.active ? COLOURS.active : COLOURS.muted,
    });
    y += ROW_H;
  }
  if (pool.gateways.length === 0) {
    texts.push({ x: rect.x + PAD, y: y + 4, text: 'no gateway candidates', size: TEXT_SIZE, anchor: 'start', fill: COLOURS.denied });
  }
  return { ...rect, pool, cx: r1(rect.x + rect.w / 2), cy: r1(rect.y + rect.h / 2), rows, texts };
}

function fmt(p: Point): string {
  return `${r1(p.x)},${r1(p.y)}`;
}

function edgePath(e: GraphEdge, a: PoolBox, b: PoolBox, boxes: Map<string, PoolBox>): string {
  const ca = { x: a.cx, y: a.cy };
  const cb = { x: b.cx, y: b.cy };
  if (e.kind === 'relayed' && e.via && e.via.length > 0) {
    const controls = e.via.map((v) => boxes.get(v)).filter((v): v is PoolBox => v !== undefined).map((v) => ({ x: v.cx, y: v.cy }));
    if (controls.length === 1) {
      // The curve bends towards the relay: it passes half-way between the chord and the relay.
      const c = controls[0];
      const start = exitPoint(a, c);
      const end = exitPoint(b, c);
      return `M${fmt(start)} Q${fmt(c)} ${fmt(end)}`;
    }
    if (controls.length >= 2) {
      const start = exitPoint(a, controls[0]);
      const end = exitPoint(b, controls[controls.length - 1]);
      return `M${fmt(start)} C${fmt(controls[0])} ${fmt(controls[controls.length - 1])} ${fmt(end)}`;
    }
  }
  return `M${fmt(exitPoint(a, cb))} L${fmt(exitPoint(b, ca))}`;
}
