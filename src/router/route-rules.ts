// Which route rule a request path belongs to: the configured prefixes, longest first.
// A prefix matches on path-segment boundaries ("/api" matches "/api" and "/api/x", not
// "/apix"); a prefix ending in "/" matches everything under it. The rule gives the route
// class, the service of the zone that serves it and whether the prefix is stripped.
import type { Problem } from '../cells/check';
import { tableServices } from '../cells/services';
import { DEFAULT_SERVICE, type RouteClass, type RoutingTable } from '../cells/types';
import type { RouteRule } from './config';

/** A configured rule with its defaults filled in. */
export interface MatchedRule {
  readonly prefix: string;
  readonly class: RouteClass;
  readonly service: string;
  readonly stripPrefix: boolean;
}

export function matchedRule(rule: RouteRule): MatchedRule {
  return { prefix: rule.prefix, class: rule.class, service: rule.service ?? DEFAULT_SERVICE, stripPrefix: rule.stripPrefix === true };
}

/** Compiles the rules into one function of the raw url; null = no rule matches. */
export function compileRouteMatcher(rules: readonly RouteRule[]): (url: string) => MatchedRule | null {
  const sorted = rules.map(matchedRule).sort((a, b) => b.prefix.length - a.prefix.length);
  // The default configuration (one rule for "/") needs no look at the url at all.
  if (sorted.length === 1 && sorted[0]!.prefix === '/') {
    const only = sorted[0]!;
    return () => only;
  }
  return (url) => {
    for (const rule of sorted) if (matches(url, rule.prefix)) return rule;
    return null;
  };
}

function matches(url: string, prefix: string): boolean {
  if (!url.startsWith(prefix)) return false;
  if (prefix.endsWith('/') || url.length === prefix.length) return true;
  const next = url.charCodeAt(prefix.length);
  return next === 0x2f /* / */ || next === 0x3f /* ? */;
}

const LEADING_SLASHES = /^[/\\]+/;

/**
 * `url` (which `rule` matched) without the rule's prefix, as nginx's `proxy_pass http://up/`
 * in `location /prefix/` sends it: "/orders/x?q" → "/x?q", "/orders" → "/", "/orders?q" → "/?q".
 * The slashes (and backslashes, which URL parsers read as slashes) it would start with are one
 * "/", as nginx's merge_slashes makes them: "/orders//h/x" → "/h/x", never "//h/x", which a
 * URL parser reads as another host (reply-from refused it with a 500, a WebSocket with a 400).
 */
export function strippedUrl(url: string, prefix: string): string {
  return `/${url.slice(prefix.length).replace(LEADING_SLASHES, '')}`;
}

/**
 * Routes whose service no zone of `table` offers, each with its key path. `default` is offered
 * by every zone (its plain upstreams); another service by every zone that lists it under
 * `services`, and by none when none does.
 */
export function routeServiceProblems(rules: readonly RouteRule[], table: RoutingTable): Problem[] {
  const offered = new Set(tableServices(table));
  const problems: Problem[] = [];
  rules.forEach((rule, i) => {
    const service = rule.service ?? DEFAULT_SERVICE;
    if (!offered.has(service)) {
      problems.push({ path: `routes[${i}].service`, message: `no zone of the routing table offers service ${JSON.stringify(service)} (it offers ${[...offered].join(', ')})` });
    }
  });
  return problems;
}

/** Unreserved characters (RFC 3986 §2.3): an escape of one of them means the character itself. */
const ESCAPED_UNRESERVED = /%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2[DE]|5F|7E)/gi;

/**
 * The url with escapes of unreserved characters in its path decoded (RFC 3986 §6.2.2.2: the
 * same resource), so that `/%67lobal/x` meets the `/global/` rule as the upstream will read
 * it: a client cannot pick another route, zone or service by spelling a path differently.
 * Other escapes (`%2F`, `%20`…) and the query stay as sent. Most urls have no `%`: returned as is.
 */
export function normalizedUrl(url: string): string {
  const q = url.indexOf('?');
  const pathEnd = q < 0 ? url.length : q;
  const pct = url.indexOf('%');
  if (pct < 0 || pct > pathEnd) return url;
  const path = url.slice(0, pathEnd).replace(ESCAPED_UNRESERVED, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return path + url.slice(pathEnd);
}
