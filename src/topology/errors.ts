// The one error shape every topology check reports: where (file:line:col), what (a JSON path), and what to change.

export interface TopologyError {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** JSON path of the offending node, e.g. `spec.pools[2].gateways[0].publicIP`; empty for the whole document. */
  path: string;
  /** Plain words saying what to change. Never contains a value taken from the file. */
  message: string;
}

/** `file:line:col: path: message` (the path part is left out when empty). */
export function formatTopologyError(e: TopologyError): string {
  return e.path === ''
    ? `${e.file}:${e.line}:${e.col}: ${e.message}`
    : `${e.file}:${e.line}:${e.col}: ${e.path}: ${e.message}`;
}

/** Sort by position, then path, then message, and drop exact duplicates. */
export function sortErrors(errors: TopologyError[]): TopologyError[] {
  const sorted = [...errors].sort(
    (x, y) =>
      x.line - y.line ||
      x.col - y.col ||
      (x.path < y.path ? -1 : x.path > y.path ? 1 : 0) ||
      (x.message < y.message ? -1 : x.message > y.message ? 1 : 0),
  );
  return sorted.filter(
    (e, i) =>
      i === 0 ||
      e.line !== sorted[i - 1].line ||
      e.col !== sorted[i - 1].col ||
      e.path !== sorted[i - 1].path ||
      e.message !== sorted[i - 1].message,
  );
}
