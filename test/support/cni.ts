// CNI emulations for netns nodes: flannel (vxlan; iptables- or nftables-mode masquerade) and Calico (calico-ipam,
// VXLAN, Felix's rules), each installed as that CNI installs itself, with pods in namespaces of their own.
// See test/support/CNI.md for the API and what each flavour puts on a node.
import { missingToolsReason, netnsSkipReason } from './netns.ts';

export * from './cni-common.ts';
export * from './cni-flannel.ts';
export * from './cni-calico.ts';

/** undefined when the CNI emulations can run here; otherwise one line saying how to enable them. */
export function cniSkipReason(): string | undefined {
  return (
    netnsSkipReason() ??
    missingToolsReason('the CNI emulation', [
      ['nft', 'nftables'],
      ['ping', 'iputils-ping'],
      ['sysctl', 'procps'],
      ['bridge', 'iproute2'],
    ])
  );
}
