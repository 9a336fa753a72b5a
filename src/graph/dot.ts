// Graphviz DOT of the network: one cluster per pool with its gateways, one edge per pool pair (direct, relayed,
// denied). Pure and deterministic.

import type { GraphEdge, GraphGateway, NetworkGraph } from './model.ts';
import { COLOURS, gatewayColour } from './layout.ts';

function q(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function edgeAttrs(e: GraphEdge): string {
  switch (e.kind) {
    case 'direct': {
      const colour =
        e.health === 'up' ? COLOURS.healthy : e.health === 'down' ? COLOURS.unhealthy : e.health === 'unknown' ? COLOURS.unknown : COLOURS.direct;
      return `color=${q(colour)}, tooltip=${q(`direct tunnel${e.health ? ` (${e.health})` : ''}`)}`;
    }
    case 'relayed':
      return `style=dotted, color=${q(COLOURS.relayed)}, label=${q(`via ${(e.via ?? []).join(', ')}`)}, fontcolor=${q(COLOURS.relayed)}`;
    case 'denied':
      return `style=dashed, color=${q(COLOURS.denied)}, label="denied", fontcolor=${q(COLOURS.denied)}`;
    case 'unreachable':
      return `style=dashed, color=${q(COLOURS.unreachable)}, label="no path", fontcolor=${q(COLOURS.unreachable)}`;
  }
}

export function renderDot(g: NetworkGraph): string {
  const out: string[] = [];
  out.push(`graph ${q(g.title)} {`);
  out.push('  compound=true;');
  out.push('  fontname="monospace"; node [fontname="monospace", fontsize=10]; edge [fontname="monospace", fontsize=9];');
  out.push(`  label=${q(`${g.title} (${g.mode === 'hub' ? `hub ${g.hub ?? '?'}` : 'mesh'}${g.live ? ', live' : ''})`)}; labelloc=t;`);
  const anchor = (pool: string): string => q(`pool/${pool}`);
  g.pools.forEach((p, i) => {
    const bits = [p.hub ? 'hub' : '', p.behindNAT ? 'behind NAT' : 'public', p.relay ? `relay ${p.relay}` : ''].filter((x) => x !== '');
    out.push(`  subgraph ${q(`cluster_${i}`)} {`);
    out.push(`    label=${q(`${p.name}\n${bits.join(', ')}`)};`);
    out.push(`    style=${q(`rounded${p.behindNAT ? ',dashed' : ''}`)}; color=${q(p.hub ? COLOURS.hubStroke : COLOURS.poolStroke)};`);
    out.push(`    ${anchor(p.name)} [shape=point, style=invis];`);
    for (const gw of p.gateways) {
      const colour = gatewayColour(gw, g.live);
      const label = `${gw.node}${gw.publicIP ? `\n${gw.publicIP}` : ''}\n${gw.active ? 'active' : 'standby'}${gw.health ? ` (${gw.health})` : ''}`;
      const style = gw.active ? `style="filled,bold", fillcolor=${q(COLOURS.activeFill)}` : 'style=dashed';
      out.push(`    ${q(`gw/${p.name}/${gw.node}`)} [shape=box, label=${q(label)}, color=${q(colour)}, ${style}];`);
    }
    out.push('  }');
  });
  const cluster = new Map(g.pools.map((p, i) => [p.name, `cluster_${i}`]));
  for (const e of g.edges) {
    out.push(`  ${anchor(e.a)} -- ${anchor(e.b)} [ltail=${q(cluster.get(e.a)!)}, lhead=${q(cluster.get(e.b)!)}, ${edgeAttrs(e)}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
