// The RBAC scan behind deploy-rbac.test.ts: find every Kubernetes API call in src/adapters/kube/ and what each
// component can reach. See the test file for the rules; createScanner(dir) also runs on a scratch tree (self-test).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './deploy-support.ts';

export const DYNAMIC = '{}';

export type Component = 'sync' | 'agent';

/** Entry points of each component, relative to src/ (files or directories). */
export const ENTRIES: Record<Component, string[]> = {
  sync: ['sync', 'cli/commands/sync.ts'],
  agent: ['agent', 'cli/commands/agent.ts', 'adapters/kube/heartbeat.ts'],
};

/**
 * Adapter functions each component is designed to use, checked even before its shell calls them (the sync shell
 * is written in parallel). A name that is no longer exported fails the test: update the list.
 */
export const SEEDS: Record<Component, string[]> = {
  sync: [
    'listGateways', 'getGateway', 'applyGateway', 'applyGatewayStatus', 'deleteGateway', 'gatewayInformer',
    'listNodes', 'nodeInformer',
    'listTopologies', 'getTopology', 'topologyInformer', 'applyTopologyStatus',
    'eventRecorder', 'LeaderElector', 'leaseInformer', 'listHeartbeatLeases',
  ],
  agent: ['gatewayInformer', 'Heartbeat'],
};

/** Plumbing that forwards a path it is given: calls inside them with a fully dynamic path are not call sites. */
const PATH_FORWARDERS = new Set(['listAll', 'Informer', 'makeResilientInformer']);

// ---------------------------------------------------------------- client-node generated API methods

/** API group of each generated API class Corvid might use. */
const API_CLASS_GROUP: Record<string, string> = {
  CoreV1Api: '',
  CoordinationV1Api: 'coordination.k8s.io',
  EventsV1Api: 'events.k8s.io',
  AppsV1Api: 'apps',
  ApiextensionsV1Api: 'apiextensions.k8s.io',
};
/** Kind (as in method names) -> resource, for the kinds Corvid might touch. */
const KIND_RESOURCE: Record<string, string> = {
  Node: 'nodes',
  Lease: 'leases',
  Event: 'events',
  Secret: 'secrets',
  ConfigMap: 'configmaps',
  Namespace: 'namespaces',
  Pod: 'pods',
  CustomResourceDefinition: 'customresourcedefinitions',
};
const METHOD_VERB: Record<string, string> = {
  list: 'list',
  read: 'get',
  get: 'get',
  create: 'create',
  replace: 'update',
  patch: 'patch',
  delete: 'delete',
  deleteCollection: 'deletecollection',
};
/** Explicit entries for methods the generic pattern does not describe. Add here when the test asks you to. */
const API_METHODS: Record<string, { group: string; resource: string; verbs: string[] }> = {};

/** client-node classes whose methods are not API calls. */
const NOT_API = new Set(['KubeConfig', 'ApiException', 'Config', 'KubernetesObjectApi_'] );
// ---------------------------------------------------------------- the scan

export interface Need {
  group: string;
  /** resource or resource/subresource */
  resource: string;
  verb: string;
  /** Static namespace, '{}' when computed at run time, undefined for cluster-scoped requests. */
  namespace?: string;
  /** The object's name, when the path names one that is known before run time (what resourceNames can grant). */
  name?: string;
  /** file:line of the call. */
  where: string;
  /** The function or class the call is in. */
  decl: ts.Node | undefined;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (statSync(dir).isFile()) return dir.endsWith('.ts') ? [dir] : [];
  return readdirSync(dir).sort().flatMap((n) => tsFiles(join(dir, n)));
}

export interface Scan {
  needs: Need[];
  problems: string[];
}

export interface Scanner {
  scan: Scan;
  reachable(component: Component): { decls: Set<ts.Node>; entryFiles: string[]; missingSeeds: string[] };
  /** True when `n` sits inside one of `decls`. */
  within(n: Need, decls: Set<ts.Node>): boolean;
}

/** Scan the TypeScript tree under `src` (its adapters in src/adapters/kube). */
export function createScanner(src: string): Scanner {
  const SRC = src;
  const KUBE = join(src, 'adapters', 'kube');
  const program = ts.createProgram(tsFiles(SRC), {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();

  const where = (n: ts.Node): string => {
    const sf = n.getSourceFile();
    return `${relative(REPO_ROOT, sf.fileName)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  };

  function resolved(sym: ts.Symbol | undefined): ts.Symbol | undefined {
    if (sym !== undefined && sym.flags & ts.SymbolFlags.Alias) return checker.getAliasedSymbol(sym);
    return sym;
  }

  /** Declarations an expression refers to: through imports, and through `await import()` destructuring (via the type). */
  function declsOf(n: ts.Node): ts.Declaration[] {
    const out: ts.Declaration[] = [];
    const sym = resolved(checker.getSymbolAtLocation(n));
    for (const d of sym?.declarations ?? []) out.push(d);
    if (out.every((d): boolean => ts.isBindingElement(d) || ts.isParameter(d) || ts.isVariableDeclaration(d))) {
      const tsym = checker.getTypeAtLocation(n).getSymbol();
      for (const d of tsym?.declarations ?? []) if (ts.isFunctionDeclaration(d) || ts.isClassDeclaration(d)) out.push(d);
    }
    return out;
  }

  

  /** Evaluate a string expression as far as it is static; computed parts become `{}`. */
  function evalString(e: ts.Expression, depth = 0): string {
    if (depth > 20) return DYNAMIC;
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return e.text;
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) return evalString(e.expression, depth + 1);
    if (ts.isTemplateExpression(e)) {
      return e.head.text + e.templateSpans.map((s) => evalString(s.expression, depth + 1) + s.literal.text).join('');
    }
    if (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.PlusToken) {
      return evalString(e.left, depth + 1) + evalString(e.right, depth + 1);
    }
    if (ts.isIdentifier(e) || ts.isPropertyAccessExpression(e)) {
      // `{ path }` names the variable `path`, not the property.
      const sym =
        ts.isIdentifier(e) && ts.isShorthandPropertyAssignment(e.parent)
          ? checker.getShorthandAssignmentValueSymbol(e.parent)
          : checker.getSymbolAtLocation(ts.isPropertyAccessExpression(e) ? e.name : e);
      const decl = resolved(sym)?.valueDeclaration;
      if (decl && ts.isVariableDeclaration(decl) && decl.initializer && ts.getCombinedNodeFlags(decl) & ts.NodeFlags.Const) {
        return evalString(decl.initializer, depth + 1);
      }
      if (decl && ts.isPropertyAssignment(decl)) return evalString(decl.initializer, depth + 1);
      return DYNAMIC;
    }
    if (ts.isCallExpression(e)) {
      // A path helper declared in src/, e.g. leasesPath(ns), gatewayPath(name), Heartbeat#path(name?).
      const callee = ts.isPropertyAccessExpression(e.expression) ? e.expression.name : e.expression;
      for (const d of declsOf(callee)) {
        if (!(ts.isFunctionDeclaration(d) || ts.isMethodDeclaration(d)) || !d.body) continue;
        if (!d.getSourceFile().fileName.startsWith(SRC)) continue;
        const body = d.body;
        const returns: ts.Expression[] = [];
        const walk = (n: ts.Node): void => {
          if (ts.isReturnStatement(n) && n.expression) returns.push(n.expression);
          else if (!ts.isFunctionLike(n)) ts.forEachChild(n, walk);
        };
        ts.forEachChild(body, walk);
        const shapes = [...new Set(returns.flatMap((r) => branches(r)).map((r) => evalString(r, depth + 1)))];
        if (shapes.length === 1) return shapes[0];
        // Several shapes (a collection path, or an object path when a name is given): a call that leaves out
        // optional parameters gets the shortest, a call with all of them the longest.
        shapes.sort((a, b) => a.length - b.length);
        return e.arguments.length < d.parameters.length ? shapes[0] : shapes[shapes.length - 1];
      }
      return DYNAMIC;
    }
    return DYNAMIC;
  }

  /** The values an expression can take: both branches of a conditional. */
  function branches(e: ts.Expression): ts.Expression[] {
    if (ts.isParenthesizedExpression(e)) return branches(e.expression);
    if (ts.isConditionalExpression(e)) return [...branches(e.whenTrue), ...branches(e.whenFalse)];
    return [e];
  }

  function property(obj: ts.Expression | undefined, name: string): ts.Expression | undefined {
    if (obj === undefined || !ts.isObjectLiteralExpression(obj)) return undefined;
    for (const p of obj.properties) {
      if (ts.isPropertyAssignment(p) && p.name.getText() === name) return p.initializer;
      if (ts.isShorthandPropertyAssignment(p) && p.name.text === name) return p.name;
    }
    return undefined;
  }

  function enclosingDecl(n: ts.Node): ts.Node | undefined {
    for (let p: ts.Node | undefined = n.parent; p; p = p.parent) {
      if (ts.isClassDeclaration(p) || (ts.isFunctionDeclaration(p) && p.name)) return p;
    }
    return undefined;
  }

  function declName(d: ts.Node | undefined): string | undefined {
    return d && (ts.isClassDeclaration(d) || ts.isFunctionDeclaration(d)) ? d.name?.text : undefined;
  }

  /** Turn an HTTP method and a path pattern into needs. */
  function restNeeds(method: string, path: string, opts: { watch?: boolean; apply?: boolean }, at: ts.Node): Need[] | string {
    const segs = path.split('?')[0].split('/').filter(Boolean);
    // API discovery (/api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>): non-resource URLs that every
    // authenticated user may GET (ClusterRole system:discovery), so no grant of ours is needed, whatever the group.
    if (method === 'GET' && ((segs[0] === 'api' && segs.length <= 2) || (segs[0] === 'apis' && segs.length <= 3))) return [];
    let group: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 3) {
      group = '';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 4) {
      group = segs[1];
      rest = segs.slice(3);
    } else {
      return `cannot read an API path from "${path}"`;
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [resource, name, sub] = rest;
    if (group === DYNAMIC || resource === undefined || resource === DYNAMIC || sub === DYNAMIC || segs[2] === DYNAMIC) {
      return `the API group or resource of "${path}" is computed at run time`;
    }
    const res = sub ? `${resource}/${sub}` : resource;
    const verbs: string[] = [];
    const collection = name === undefined;
    switch (method) {
      case 'GET':
        verbs.push(...(collection ? (opts.watch ? ['list', 'watch'] : ['list']) : ['get']));
        break;
      case 'WATCH':
        verbs.push('watch');
        break;
      case 'POST':
        verbs.push('create');
        break;
      case 'PUT':
        verbs.push('update');
        break;
      case 'PATCH':
        // Server-side apply creates a missing object, and the API server then also checks `create`.
        verbs.push('patch', ...(opts.apply && !sub ? ['create'] : []));
        break;
      case 'DELETE':
        verbs.push(collection ? 'deletecollection' : 'delete');
        break;
      default:
        return `unknown HTTP method "${method}"`;
    }
    const known = name !== undefined && !name.includes(DYNAMIC) ? { name } : {};
    return verbs.map((verb) => ({ group, resource: res, verb, namespace, ...known, where: where(at), decl: enclosingDecl(at) }));
  }

  /** client-node generated API method -> needs, or an error asking to extend the mapping. */
  function clientNodeNeeds(className: string, method: string, call: ts.CallExpression): Need[] | string {
    const at = { where: where(call), decl: enclosingDecl(call) };
    const explicit = API_METHODS[method];
    if (explicit) return explicit.verbs.map((verb) => ({ group: explicit.group, resource: explicit.resource, verb, ...at }));
    const custom = /^(list|get|create|replace|patch|delete)(Namespaced|Cluster)CustomObject(Status)?$/.exec(method);
    if (custom) {
      const arg = call.arguments[0];
      const group = property(arg, 'group');
      const plural = property(arg, 'plural');
      if (!group || !plural || evalString(group) === DYNAMIC || evalString(plural) === DYNAMIC) {
        return `${className}.${method}: group/plural must be readable in the call's argument`;
      }
      const ns = custom[2] === 'Namespaced' ? (property(arg, 'namespace') ? evalString(property(arg, 'namespace')!) : DYNAMIC) : undefined;
      const verb = METHOD_VERB[custom[1]];
      return [{ group: evalString(group), resource: evalString(plural) + (custom[3] ? '/status' : ''), verb, namespace: ns, ...at }];
    }
    const typed = /^(list|read|create|replace|patch|delete|deleteCollection)(Namespaced)?([A-Z]\w*?)(Status)?$/.exec(method);
    const group = API_CLASS_GROUP[className];
    if (typed && group !== undefined && KIND_RESOURCE[typed[3]] && !/ForAllNamespaces$/.test(method)) {
      return [
        {
          group,
          resource: KIND_RESOURCE[typed[3]] + (typed[4] ? '/status' : ''),
          verb: METHOD_VERB[typed[1]],
          namespace: typed[2] ? DYNAMIC : undefined,
          ...at,
        },
      ];
    }
    return `@kubernetes/client-node ${className}.${method} is not in the RBAC mapping: add it to API_METHODS in ${relative(REPO_ROOT, import.meta.filename)}`;
  }

  function fromClientNode(d: ts.Declaration): boolean {
    return d.getSourceFile().fileName.includes('/@kubernetes/client-node/');
  }

  /** Every API call site in src/adapters/kube/. */
  function scanAdapters(): Scan {
    const needs: Need[] = [];
    const problems: string[] = [];
    const add = (r: Need[] | string, at: ts.Node): void => {
      if (typeof r === 'string') problems.push(`${where(at)}: ${r}`);
      else needs.push(...r);
    };
    const forwarder = (at: ts.Node): boolean => PATH_FORWARDERS.has(declName(enclosingDecl(at)) ?? '');
    for (const sf of program.getSourceFiles()) {
      if (!sf.fileName.startsWith(KUBE)) continue;
      const visit = (n: ts.Node): void => {
        if (ts.isCallExpression(n) || ts.isNewExpression(n)) {
          const callee = n.expression;
          const target = ts.isPropertyAccessExpression(callee) ? callee.name : callee;
          const decls = declsOf(target);
          const names = new Set(decls.map((d) => (ts.isFunctionDeclaration(d) || ts.isClassDeclaration(d) ? d.name?.text : undefined)));
          const ours = decls.some((d) => d.getSourceFile().fileName.startsWith(KUBE));
          const args = n.arguments ?? ts.factory.createNodeArray();
          if (ours && names.has('kubeRequest')) {
            const req = args[1];
            const method = property(req, 'method');
            const path = property(req, 'path');
            if (!method || !path) {
              problems.push(`${where(n)}: kubeRequest without a literal {method, path}`);
            } else {
              const p = evalString(path);
              if (p === DYNAMIC && forwarder(n)) return;
              const ct = property(req, 'contentType');
              add(restNeeds(evalString(method), p, { apply: ct !== undefined && evalString(ct) === 'application/apply-patch+yaml' }, n), n);
            }
          } else if (ours && names.has('listAll')) {
            const p = evalString(args[1]);
            if (!(p === DYNAMIC && forwarder(n))) add(restNeeds('GET', p, {}, n), n);
          } else if (ours && (names.has('Informer') || names.has('makeResilientInformer'))) {
            const path = property(args[1], 'path');
            const p = path ? evalString(path) : DYNAMIC;
            if (!(p === DYNAMIC && forwarder(n))) add(restNeeds('GET', p, { watch: true }, n), n);
          } else if (ts.isPropertyAccessExpression(callee) && decls.some(fromClientNode)) {
            const cls = decls.find(fromClientNode)!.parent;
            // The generated classes are ObjectCoreV1Api, PromiseCoreV1Api, ... exported as CoreV1Api.
            const className = (cls && ts.isClassDeclaration(cls) ? cls.name?.text ?? '' : '').replace(/^(Object|Promise|Observable)(?=\w+Api$)/, '');
            if (className === 'Watch' && callee.name.text === 'watch') {
              const p = evalString(args[0]);
              if (!(p === DYNAMIC && forwarder(n))) add(restNeeds('WATCH', p, {}, n), n);
            } else if (!NOT_API.has(className) && /Api$/.test(className)) {
              add(clientNodeNeeds(className, callee.name.text, n as ts.CallExpression), n);
            } else if (!NOT_API.has(className) && className !== 'Watch') {
              problems.push(`${where(n)}: call of @kubernetes/client-node ${className}.${callee.name.text}: add it to the RBAC mapping or to NOT_API`);
            }
          } else if (ts.isIdentifier(callee) && decls.some(fromClientNode) && /^make\w*Informer$|^(list|watch)/.test(callee.text)) {
            problems.push(`${where(n)}: @kubernetes/client-node ${callee.text}(): add it to the RBAC mapping`);
          }
        }
        ts.forEachChild(n, visit);
      };
      visit(sf);
    }
    return { needs, problems };
  }

  /** Declarations in src/ reachable from a component's entry points and seeds. */
  function reachable(component: Component): { decls: Set<ts.Node>; entryFiles: string[]; missingSeeds: string[] } {
    const entryFiles = ENTRIES[component].flatMap((e) => tsFiles(join(SRC, e)));
    const decls = new Set<ts.Node>();
    const queue: ts.Node[] = [];
    const take = (d: ts.Node): void => {
      if (decls.has(d)) return;
      decls.add(d);
      queue.push(d);
    };
    for (const f of entryFiles) {
      const sf = program.getSourceFile(f);
      if (sf) queue.push(sf);
    }
    const exported = new Map<string, ts.Node>();
    for (const sf of program.getSourceFiles()) {
      if (!sf.fileName.startsWith(KUBE)) continue;
      for (const st of sf.statements) {
        if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st)) && st.name) exported.set(st.name.text, st);
      }
    }
    const missingSeeds: string[] = [];
    for (const s of SEEDS[component]) {
      const d = exported.get(s);
      if (d) take(d);
      else missingSeeds.push(s);
    }
    while (queue.length > 0) {
      const n = queue.pop()!;
      // Follow every reference to code in src/ (shells call helpers that call the adapters), but not type-only ones.
      const visit = (x: ts.Node): void => {
        if (ts.isIdentifier(x)) {
          for (const d of declsOf(x)) {
            if (!d.getSourceFile().fileName.startsWith(SRC)) continue;
            if (ts.isFunctionDeclaration(d) || ts.isClassDeclaration(d)) take(d);
            else if (ts.isVariableDeclaration(d) && d.initializer) take(d);
            else {
              const top = enclosingDecl(d);
              if (top) take(top);
            }
          }
        }
        ts.forEachChild(x, visit);
      };
      ts.forEachChild(n, visit);
    }
    return { decls, entryFiles, missingSeeds };
  }

  return {
    scan: scanAdapters(),
    reachable,
    within(n, decls) {
      for (let p: ts.Node | undefined = n.decl; p; p = enclosingDecl(p)) if (decls.has(p)) return true;
      return false;
    },
  };
}
