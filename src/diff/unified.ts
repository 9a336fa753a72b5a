// A unified diff (`diff -u` format) of two texts, line by line, with Myers' O(ND) algorithm. Pure.

export type EditOp = { op: ' ' | '-' | '+'; line: string };

/** Split into lines; a trailing newline does not make an extra empty line. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * The shortest edit script from `a` to `b` (Myers 1986), as a list of kept/removed/added lines in order.
 * Deletions come before insertions within a changed run, as `diff` prints them.
 */
export function diffLines(a: string[], b: string[]): EditOp[] {
  // Trim common prefix and suffix: cheap and keeps the search space small for typical manifests.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const out: EditOp[] = [];
  for (let i = 0; i < start; i++) out.push({ op: ' ', line: a[i] });
  out.push(...myers(a.slice(start, endA), b.slice(start, endB)));
  for (let i = endA; i < a.length; i++) out.push({ op: ' ', line: a[i] });
  return out;
}

function myers(a: string[], b: string[]): EditOp[] {
  const n = a.length;
  const m = b.length;
  if (n === 0) return b.map((line) => ({ op: '+' as const, line }));
  if (m === 0) return a.map((line) => ({ op: '-' as const, line }));
  const max = n + m;
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])) x = v[offset + k + 1];
      else x = v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  // Backtrack through the saved V arrays.
  const rev: EditOp[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d];
    const k = x - y;
    let prevK: number;
    if (k === -d || (k !== d && vd[offset + k - 1] < vd[offset + k + 1])) prevK = k + 1;
    else prevK = k - 1;
    const prevX = d === 0 ? 0 : vd[offset + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      rev.push({ op: ' ', line: a[x - 1] });
      x--;
      y--;
    }
    if (d > 0) {
      if (x === prevX) rev.push({ op: '+', line: b[y - 1] });
      else rev.push({ op: '-', line: a[x - 1] });
    }
    x = prevX;
    y = prevY;
  }
  rev.reverse();
  return normaliseRuns(rev);
}

/** Within each run of changes, put all removals before all additions (stable), like GNU diff. */
function normaliseRuns(ops: EditOp[]): EditOp[] {
  const out: EditOp[] = [];
  let minus: EditOp[] = [];
  let plus: EditOp[] = [];
  const flush = (): void => {
    out.push(...minus, ...plus);
    minus = [];
    plus = [];
  };
  for (const o of ops) {
    if (o.op === '-') minus.push(o);
    else if (o.op === '+') plus.push(o);
    else {
      flush();
      out.push(o);
    }
  }
  flush();
  return out;
}

function range(start: number, count: number): string {
  // diff -u: a zero-length range names the line before it; a one-line range omits the count.
  if (count === 0) return `${start === 0 ? 0 : start - 1},0`;
  return count === 1 ? `${start}` : `${start},${count}`;
}

export interface UnifiedOptions {
  /** Lines of context around each change (diff -u default: 3). */
  context?: number;
}

/**
 * A `diff -u`-style unified diff with headers `--- fromName` / `+++ toName`, or '' when the texts are equal.
 * Ends with a newline when not empty.
 */
export function unifiedDiff(fromName: string, toName: string, from: string, to: string, opts: UnifiedOptions = {}): string {
  if (from === to) return '';
  const context = opts.context ?? 3;
  const a = splitLines(from);
  const b = splitLines(to);
  const ops = diffLines(a, b);
  const lines: string[] = [`--- ${fromName}`, `+++ ${toName}`];
  // Positions (0-based) in a and b of each op.
  const posA: number[] = [];
  const posB: number[] = [];
  let ia = 0;
  let ib = 0;
  for (const o of ops) {
    posA.push(ia);
    posB.push(ib);
    if (o.op !== '+') ia++;
    if (o.op !== '-') ib++;
  }
  const changed = ops.map((o, i) => (o.op === ' ' ? -1 : i)).filter((i) => i >= 0);
  if (changed.length === 0) {
    // Texts differ only in the trailing newline.
    return `${lines.join('\n')}\n\\ No newline at end of file\n`;
  }
  let h = 0;
  while (h < changed.length) {
    const first = changed[h];
    let last = changed[h];
    h++;
    while (h < changed.length && changed[h] - last <= 2 * context + 1) {
      last = changed[h];
      h++;
    }
    const lo = Math.max(0, first - context);
    const hi = Math.min(ops.length - 1, last + context);
    let countA = 0;
    let countB = 0;
    for (let i = lo; i <= hi; i++) {
      if (ops[i].op !== '+') countA++;
      if (ops[i].op !== '-') countB++;
    }
    lines.push(`@@ -${range(posA[lo] + 1, countA)} +${range(posB[lo] + 1, countB)} @@`);
    for (let i = lo; i <= hi; i++) lines.push(`${ops[i].op}${ops[i].line}`);
  }
  return `${lines.join('\n')}\n`;
}
