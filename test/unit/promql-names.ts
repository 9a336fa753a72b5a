// The metric selectors of PromQL expressions (dashboards, alert rules), and which of them no registry serves. A small
// lexer, not a parser: it skips strings, ranges, grouping label lists, numbers and durations, functions and keywords,
// and keeps each remaining identifier with the label matchers that follow it.
import type { Registry } from 'prom-client';

export interface Selector {
  /** The metric name as written (a histogram's `_bucket`, `_sum` or `_count` series included). */
  name: string;
  /** The text between the braces after it, '' when there are none. */
  matchers: string;
}

/** Binary operators and modifiers written as words. Aggregations and functions are known by the `(` after them. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'atan2', 'inf', 'nan']);
/** Keywords followed by a list of label names in parentheses. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** Index just past the quoted string that starts at `i`. */
function skipString(s: string, i: number): number {
  const quote = s[i];
  let j = i + 1;
  while (j < s.length && s[j] !== quote) j += s[j] === '\\' && quote !== '`' ? 2 : 1;
  return j + 1;
}

/** Index just past the bracket that closes the one at `i` (strings inside skipped). */
function skipBracket(s: string, i: number, close: string): number {
  let j = i + 1;
  while (j < s.length && s[j] !== close) j = /["'`]/.test(s[j]) ? skipString(s, j) : j + 1;
  return j + 1;
}

/**
 * Every metric selector in `expr`. Grafana's variables (`$__rate_interval`, `$node`, `${node}`) are allowed, and so is
 * Grafana's `label_values(<selector>, <label>)` query.
 */
export function selectors(expr: string): Selector[] {
  const labelValues = /^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$/s.exec(expr);
  const s = labelValues ? labelValues[1] : expr;
  const out: Selector[] = [];
  let i = 0;
  const next = (from: number): number => {
    let j = from;
    while (j < s.length && /\s/.test(s[j])) j++;
    return j;
  };
  while (i < s.length) {
    const c = s[i];
    if (/["'`]/.test(c)) i = skipString(s, i);
    else if (c === '[') i = skipBracket(s, i, ']');
    else if (c === '#') i = s.indexOf('\n', i) < 0 ? s.length : s.indexOf('\n', i);
    else if (c === '$') i = s[i + 1] === '{' ? skipBracket(s, i + 1, '}') : i + 1 + (/^\w*/.exec(s.slice(i + 1))?.[0].length ?? 0);
    else if (c === '{') {
      // A selector without a name before it: {__name__="..."}.
      const end = skipBracket(s, i, '}');
      const matchers = s.slice(i + 1, end - 1);
      const name = /__name__\s*=\s*"([^"]+)"/.exec(matchers)?.[1];
      if (name !== undefined) out.push({ name, matchers });
      i = end;
    } else if (/[0-9.]/.test(c)) {
      // A number or a duration (0.99, 1e3, 5m, 1h30m): no metric name starts with a digit.
      i += /^[\w.]+/.exec(s.slice(i))![0].length;
    } else if (/[A-Za-z_:]/.test(c)) {
      const word = /^[\w:]+/.exec(s.slice(i))![0];
      const after = next(i + word.length);
      if (LABEL_LISTS.has(word) && s[after] === '(') i = skipBracket(s, after, ')');
      // A function or aggregation: `rate(`, `sum(`, and `sum by (...)` with its grouping first.
      else if (KEYWORDS.has(word.toLowerCase()) || s[after] === '(' || /^(by|without)\s*\(/.test(s.slice(after))) i = i + word.length;
      else if (s[after] === '{') {
        const end = skipBracket(s, after, '}');
        out.push({ name: word, matchers: s.slice(after + 1, end - 1) });
        i = end;
      } else {
        out.push({ name: word, matchers: '' });
        i += word.length;
      }
    } else i++;
  }
  return out;
}

/** The value of label `label` in a selector's matchers, when it is matched for equality. */
export function matcherValue(matchers: string, label: string): string | undefined {
  return new RegExp(`(?:^|[\\s,])${label}\\s*=\\s*"([^"]*)"`).exec(matchers)?.[1];
}

/** The series names a registry serves: a histogram's are `_bucket`, `_sum` and `_count`, a summary's add `_sum` and `_count`. */
export function seriesNames(registry: Registry): Set<string> {
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

/**
 * What is wrong with the selectors of `expr`, given the series each scrape job serves: a selector without a `job`
 * matcher (other controllers in the cluster serve controller_runtime_*, workqueue_* and rest_client_* too), a job that
 * is not in `jobs`, or a name that job does not serve. Empty when all is well.
 */
export function selectorProblems(expr: string, jobs: Record<string, Set<string>>): string[] {
  const found = selectors(expr);
  if (found.length === 0) return [`no metric in: ${expr}`];
  const problems: string[] = [];
  for (const { name, matchers } of found) {
    const job = matcherValue(matchers, 'job');
    if (job === undefined) problems.push(`${name}: no job="..." matcher`);
    else if (jobs[job] === undefined) problems.push(`${name}: unknown job "${job}"`);
    else if (!jobs[job].has(name)) problems.push(`${name}: not served by job "${job}"`);
  }
  return problems;
}
