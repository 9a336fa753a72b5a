// Helpers for the deploy/ tests: load manifests, find objects, run external tools if present.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEPLOY = join(REPO_ROOT, 'deploy');

export interface Manifest {
  /** Path relative to the repository root. */
  file: string;
  /** Index of the document in its file. */
  doc: number;
  obj: any;
}

/** Every *.yaml / *.yml file under `dir`, recursively, sorted. */
export function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Parse a multi-document YAML file; throws with file and message on the first syntax error. Skips empty docs. */
export function loadYamlFile(path: string): Manifest[] {
  const file = relative(REPO_ROOT, path);
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { prettyErrors: true });
  const out: Manifest[] = [];
  docs.forEach((d, i) => {
    if (d.errors.length > 0) throw new Error(`${file} (document ${i + 1}): ${d.errors[0].message}`);
    if (d.warnings.length > 0) throw new Error(`${file} (document ${i + 1}): ${d.warnings[0].message}`);
    const obj = d.toJS({ maxAliasCount: 0 });
    if (obj !== null && obj !== undefined) out.push({ file, doc: i, obj });
  });
  return out;
}

/** kustomize's own files (kustomization.yaml, Component): not objects for the API server. */
export function isKustomizeFile(path: string): boolean {
  return /(^|\/)kustomization\.ya?ml$/.test(path);
}

/** All Kubernetes-style documents under deploy/ (not kustomization.yaml files). */
export function deployManifests(): Manifest[] {
  return yamlFiles(DEPLOY)
    .filter((p) => !isKustomizeFile(p))
    .flatMap((p) => loadYamlFile(p));
}

/** Documents of one file (path relative to deploy/). */
export function manifestsOf(pathInDeploy: string): any[] {
  return loadYamlFile(join(DEPLOY, pathInDeploy)).map((m) => m.obj);
}

export function findObject(objs: any[], kind: string, name: string): any {
  const o = objs.find((x) => x?.kind === kind && x?.metadata?.name === name);
  if (o === undefined) throw new Error(`no ${kind} ${name}`);
  return o;
}

/** The first executable of `names` found on PATH, or undefined. */
export function which(...names: string[]): string | undefined {
  for (const n of names) {
    const r = spawnSync('sh', ['-c', `command -v ${n}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() !== '') return r.stdout.trim();
  }
  return undefined;
}

/** The files deploy/crds/kustomization.yaml lists that are not there yet (the CRDs are written by others). */
export function missingCrdFiles(): string[] {
  const k = loadYamlFile(join(DEPLOY, 'crds', 'kustomization.yaml'))[0].obj as { resources: string[] };
  return k.resources.filter((r) => {
    try {
      return !statSync(join(DEPLOY, 'crds', r)).isFile();
    } catch {
      return true;
    }
  });
}
