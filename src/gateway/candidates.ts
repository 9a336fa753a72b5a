// A Gateway's gateway candidates: the tunnel endpoints of its spec, in preference order (as Raven reads them too).
import type { Endpoint, Gateway } from './types.ts';

export function candidateEndpoints(g: Gateway): Endpoint[] {
  return (g.spec?.endpoints ?? []).filter((e) => e.type === 'tunnel');
}

export function candidateNodes(g: Gateway): string[] {
  return candidateEndpoints(g).map((e) => e.nodeName);
}
