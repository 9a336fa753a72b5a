// A large topology that is valid: whatever checks a validator does first, all of it must be read and checked, so it
// is slow and heavy by its size alone (10,000 pools: 1.3 MB, seconds and about 150 MiB to validate; 40,000: 7 MB).

/** `count` pools: the first public, the rest behind NAT (relayed through it); pool `pN` selects nodes labelled pool=pN. */
export function manyPoolsYaml(name: string, count: number): string {
  const lines = ['apiVersion: corvid.dev/v1alpha1', 'kind: Topology', `metadata: {name: ${name}}`, 'spec:', '  encryption: {pskSecretRef: {name: corvid-psk, key: psk}}', '  pools:'];
  for (let i = 0; i < count; i++) {
    const gw = i === 0 ? '{node: n0, publicIP: 203.0.113.1}' : `{node: n${i}}`;
    lines.push(`  - {name: p${i}, nodeSelector: {matchLabels: {pool: p${i}}}, gateways: [${gw}]${i === 0 ? '' : ', behindNAT: true'}}`);
  }
  return `${lines.join('\n')}\n`;
}
