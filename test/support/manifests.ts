// What deploy/base says about how a container runs, for the tests and benches that run `corvid` as deployed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * NODE_OPTIONS of a container of deploy/base (the V8 flags the image runs with); empty when the manifest sets none.
 * The benches measure memory with them, and the image test runs the agent with them.
 */
export function deployedNodeOptions(manifest: 'agent-daemonset.yaml' | 'sync-deployment.yaml', container: string): string {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const doc = parseYaml(readFileSync(join(root, 'deploy', 'base', manifest), 'utf8')) as {
    spec?: { template?: { spec?: { containers?: Array<{ name?: string; env?: Array<{ name?: string; value?: string }> }> } } };
  };
  const c = doc.spec?.template?.spec?.containers?.find((x) => x.name === container);
  if (c === undefined) throw new Error(`deploy/base/${manifest} has no container ${container}`);
  return c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
}
