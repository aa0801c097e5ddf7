// Which route class a request path belongs to: the configured prefixes, longest first.
// A prefix matches on path-segment boundaries ("/api" matches "/api" and "/api/x", not
// "/apix"); a prefix ending in "/" matches everything under it.
import type { RouteClass } from '../cells/types';
import type { RouteRule } from './config';

/** Compiles the rules into one function of the raw url; null = no rule matches. */
export function compileRouteClassifier(rules: readonly RouteRule[]): (url: string) => RouteClass | null {
  const sorted = [...rules].sort((a, b) => b.prefix.length - a.prefix.length);
  // The default configuration (one rule for "/") needs no look at the url at all.
  if (sorted.length === 1 && sorted[0]!.prefix === '/') {
    const only = sorted[0]!.class;
    return () => only;
  }
  return (url) => {
    for (const rule of sorted) if (matches(url, rule.prefix)) return rule.class;
    return null;
  };
}

function matches(url: string, prefix: string): boolean {
  if (!url.startsWith(prefix)) return false;
  if (prefix.endsWith('/') || url.length === prefix.length) return true;
  const next = url.charCodeAt(prefix.length);
  return next === 0x2f /* / */ || next === 0x3f /* ? */;
}
