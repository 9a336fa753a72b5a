// Kustomize JSON6902 patches (the subset our components use), applied in tests that cannot run kustomize: Debian's
// kubectl 1.20 bundles a kustomize without components.
import assert from 'node:assert/strict';

export interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

/** The JSON6902 `test`/`replace`/`add` operations of a kustomize patch, applied to a copy of `obj`. */
export function jsonPatch(obj: any, ops: readonly PatchOp[]): any {
  const out = structuredClone(obj);
  for (const { op, path, value } of ops) {
    const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    const parent = keys.reduce((o, k) => o[k], out);
    if (op === 'test') assert.deepEqual(parent[last], value, `patch test ${path}`);
    else if (op === 'replace') parent[last] = value;
    else if (op === 'add' && Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, value);
    else throw new Error(`jsonPatch: ${op} not supported here`);
  }
  return out;
}
