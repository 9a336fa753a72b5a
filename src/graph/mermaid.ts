// Mermaid flowchart of the network: a subgraph per pool with its gateways, a link per pool pair. Pure.
// Ids are positional (p0, p0g1) so any pool or node name is safe; names appear only in quoted labels.

import type { EdgeKind, NetworkGraph } from './model.ts';
import { COLOURS } from './layout.ts';

function label(s: string): string {
  // Mermaid quoted labels: escape quotes as entity codes.
  return `"${s.replace(/"/g, '#quot;')}"`;
}

export function renderMermaid(g: NetworkGraph): string {
  const out: string[] = ['flowchart LR'];
  const id = new Map<string, string>();
  g.pools.forEach((p, i) => {
    id.set(p.name, `p${i}`);
    const bits = [p.hub ? 'hub' : '', p.behindNAT ? 'behind NAT' : '', p.relay ? `relay ${p.relay}` : ''].filter((x) => x !== '');
    out.push(`  subgraph p${i}[${label(bits.length ? `${p.name} (${bits.join(', ')})` : p.name)}]`);
    p.gateways.forEach((gw, j) => {
      const text = `${gw.node}${gw.active ? ' ★ active' : ''}${gw.health ? ` · ${gw.health}` : ''}`;
      out.push(`    p${i}g${j}[${label(text)}]`);
    });
    if (p.gateways.length === 0) out.push(`    p${i}none[${label('no gateway candidates')}]`);
    out.push('  end');
  });
  const styles: string[] = [];
  const colour: Record<EdgeKind, string> = {
    direct: COLOURS.direct,
    relayed: COLOURS.relayed,
    denied: COLOURS.denied,
    unreachable: COLOURS.unreachable,
  };
  g.edges.forEach((e, i) => {
    const a = id.get(e.a)!;
    const b = id.get(e.b)!;
    switch (e.kind) {
      case 'direct':
        out.push(`  ${a} ---${e.health ? `|${e.health}|` : ''} ${b}`);
        break;
      case 'relayed':
        out.push(`  ${a} -.-|${label(`via ${(e.via ?? []).join(', ')}`)}| ${b}`);
        break;
      case 'denied':
        out.push(`  ${a} -.-|denied| ${b}`);
        break;
      case 'unreachable':
        out.push(`  ${a} -.-|no path| ${b}`);
        break;
    }
    let c: string = colour[e.kind];
    if (e.kind === 'direct' && e.health === 'up') c = COLOURS.healthy;
    if (e.kind === 'direct' && e.health === 'down') c = COLOURS.unhealthy;
    const dash = e.kind === 'denied' ? ',stroke-dasharray:6 4' : '';
    styles.push(`  linkStyle ${i} stroke:${c}${dash}`);
  });
  out.push(...styles);
  g.pools.forEach((p, i) => {
    p.gateways.forEach((gw, j) => {
      if (gw.active) out.push(`  style p${i}g${j} fill:${COLOURS.activeFill},stroke:${COLOURS.active},stroke-width:2px`);
    });
    if (p.hub) out.push(`  style p${i} stroke:${COLOURS.hubStroke},stroke-width:2px`);
  });
  return `${out.join('\n')}\n`;
}
