// Self-contained SVG of the network: presentation attributes only, generic font families, no external references.
// Deterministic: the same graph gives the same bytes.

import type { GraphEdge, GraphGateway, NetworkGraph } from './model.ts';
import { COLOURS, FONT_FAMILY, gatewayColour, layoutGraph } from './layout.ts';
import type { Layout, LayoutOptions, LegendItem, PoolBox, TextItem } from './layout.ts';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function text(t: TextItem): string {
  const attrs = [`x="${t.x.toFixed(1)}"`, `y="${t.y.toFixed(1)}"`, `font-size="${t.size}"`, `fill="${t.fill}"`];
  if (t.bold) attrs.push('font-weight="bold"');
  if (t.anchor !== 'start') attrs.push(`text-anchor="${t.anchor}"`);
  const title = t.full ? `<title>${escapeXml(t.full)}</title>` : '';
  return `<text ${attrs.join(' ')}>${title}${escapeXml(t.text)}</text>`;
}

interface EdgeStyle {
  stroke: string;
  dash?: string;
  width: number;
}

function edgeStyle(e: GraphEdge, dense: boolean): EdgeStyle {
  const w = dense ? 0.8 : 1.6;
  switch (e.kind) {
    case 'direct': {
      const stroke =
        e.health === 'up' ? COLOURS.healthy : e.health === 'down' ? COLOURS.unhealthy : e.health === 'unknown' ? COLOURS.unknown : COLOURS.direct;
      return { stroke, width: e.health === 'down' ? w * 1.5 : w };
    }
    case 'relayed':
      return { stroke: COLOURS.relayed, dash: '2 4', width: w };
    case 'denied':
      return { stroke: COLOURS.denied, dash: '7 5', width: w };
    case 'unreachable':
      return { stroke: COLOURS.unreachable, dash: '2 2', width: w };
  }
}

function edgeTitle(e: GraphEdge): string {
  switch (e.kind) {
    case 'direct':
      return `${e.a} ↔ ${e.b}: direct tunnel${e.health ? ` (${e.health})` : ''}`;
    case 'relayed':
      return `${e.a} ↔ ${e.b}: relayed via ${(e.via ?? []).join(', ')}`;
    case 'denied':
      return `${e.a} ↔ ${e.b}: denied by a connectivity rule`;
    case 'unreachable':
      return `${e.a} ↔ ${e.b}: allowed but no path (both behind NAT, no relay)`;
  }
}

function edgeSvg(d: string, e: GraphEdge, dense: boolean): string {
  const s = edgeStyle(e, dense);
  const attrs = [`d="${d}"`, 'fill="none"', `stroke="${s.stroke}"`, `stroke-width="${s.width}"`];
  if (s.dash) attrs.push(`stroke-dasharray="${s.dash}"`);
  if (dense) attrs.push('stroke-opacity="0.55"');
  return `<path ${attrs.join(' ')}><title>${escapeXml(edgeTitle(e))}</title></path>`;
}

function gatewayDot(x: number, y: number, g: GraphGateway, live: boolean): string {
  const colour = gatewayColour(g, live);
  return g.active
    ? `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4.5" fill="${colour}" stroke="${colour}" stroke-width="1.5"/>`
    : `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="#ffffff" stroke="${colour}" stroke-width="1.8"/>`;
}

function poolSvg(b: PoolBox, live: boolean): string {
  const p = b.pool;
  const out: string[] = [];
  out.push(`<g id="pool-${escapeXml(p.name)}">`);
  out.push(`<title>${escapeXml(poolTitle(b))}</title>`);
  const stroke = p.hub ? COLOURS.hubStroke : COLOURS.poolStroke;
  const attrs = [
    `x="${b.x.toFixed(1)}"`,
    `y="${b.y.toFixed(1)}"`,
    `width="${b.w}"`,
    `height="${b.h}"`,
    'rx="7"',
    `fill="${COLOURS.poolFill}"`,
    `stroke="${stroke}"`,
    `stroke-width="${p.hub ? 2.5 : 1.2}"`,
  ];
  if (p.behindNAT) attrs.push('stroke-dasharray="5 3"');
  out.push(`<rect ${attrs.join(' ')}/>`);
  p.gateways.forEach((g, i) => {
    const y = b.rows[i];
    if (g.active) {
      out.push(
        `<rect x="${(b.x + 4).toFixed(1)}" y="${(y - 8).toFixed(1)}" width="${b.w - 8}" height="16" rx="4" fill="${COLOURS.activeFill}"/>`,
      );
    }
    out.push(gatewayDot(b.x + 9 + 7, y, g, live));
  });
  for (const t of b.texts) out.push(text(t));
  out.push('</g>');
  return out.join('');
}

function poolTitle(b: PoolBox): string {
  const p = b.pool;
  const lines = [`pool ${p.name}${p.hub ? ' (hub)' : ''}${p.behindNAT ? ', behind NAT' : ''}${p.relay ? `, relay ${p.relay}` : ''}`];
  for (const g of p.gateways) {
    lines.push(`${g.active ? 'active' : 'standby'} ${g.node}${g.publicIP ? ` ${g.publicIP}` : ''}${g.healthDetail ? ` (${g.health}: ${g.healthDetail})` : ''}`);
  }
  return lines.join('\n');
}

function legendSvg(l: LegendItem): string {
  const x1 = l.x;
  const x2 = l.x + 26;
  const y = l.y;
  let mark = '';
  switch (l.kind) {
    case 'edge-direct':
      mark = `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${COLOURS.direct}" stroke-width="2"/>`;
      break;
    case 'edge-relayed':
      mark = `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${COLOURS.relayed}" stroke-width="2" stroke-dasharray="2 4"/>`;
      break;
    case 'edge-denied':
      mark = `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${COLOURS.denied}" stroke-width="2" stroke-dasharray="7 5"/>`;
      break;
    case 'edge-unreachable':
      mark = `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${COLOURS.unreachable}" stroke-width="2" stroke-dasharray="2 2"/>`;
      break;
    case 'gw-active':
      mark = `<rect x="${x1}" y="${y - 7}" width="26" height="14" rx="4" fill="${COLOURS.activeFill}"/><circle cx="${x1 + 13}" cy="${y}" r="4.5" fill="${COLOURS.active}"/>`;
      break;
    case 'gw-candidate':
      mark = `<circle cx="${x1 + 13}" cy="${y}" r="4" fill="#ffffff" stroke="${COLOURS.muted}" stroke-width="1.8"/>`;
      break;
    case 'health':
      mark = `<circle cx="${x1 + 13}" cy="${y}" r="5" fill="${l.colour ?? COLOURS.unknown}"/>`;
      break;
  }
  return mark + text(l.label);
}

/** Render an already computed layout. */
export function layoutToSvg(layout: Layout, live: boolean): string {
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" font-family="${escapeXml(FONT_FAMILY)}">`,
  );
  out.push(`<rect x="0" y="0" width="${layout.width}" height="${layout.height}" fill="#ffffff"/>`);
  out.push('<g id="header">');
  for (const t of layout.header) out.push(text(t));
  for (const l of layout.legend) out.push(legendSvg(l));
  out.push('</g>');
  // Denied and no-path edges under the tunnels, tunnels on top; every edge under the pool boxes.
  const order: Record<GraphEdge['kind'], number> = { denied: 0, unreachable: 1, relayed: 2, direct: 3 };
  const edges = [...layout.edges].sort((x, y) => order[x.edge.kind] - order[y.edge.kind]);
  out.push('<g id="edges">');
  for (const e of edges) out.push(edgeSvg(e.d, e.edge, layout.dense));
  out.push('</g>');
  out.push('<g id="pools">');
  for (const b of layout.boxes) out.push(poolSvg(b, live));
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export function renderSvg(g: NetworkGraph, opts: LayoutOptions = {}): string {
  return layoutToSvg(layoutGraph(g, opts), g.live);
}
