// Rules between keys that a per-key schema cannot say. Each has its text for the docs.
// They run on the document with its defaults, alongside the schema's own problems, so one run
// reports everything; a rule whose keys are themselves invalid stays silent.
import type { Problems } from '../../cells/check';

type Doc = Record<string, unknown>;

export interface RuleContext {
  /** Whether freeze.inflightGraceMs was given (its default is clamped instead of refused). */
  readonly graceGiven: boolean;
}

export interface CrossFieldRule {
  readonly text: string;
  check(doc: Doc, p: Problems, ctx: RuleContext): void;
}

function int(doc: Doc, path: string): number | undefined {
  let at: unknown = doc;
  for (const key of path.split('.')) at = typeof at === 'object' && at !== null ? (at as Doc)[key] : undefined;
  return typeof at === 'number' && Number.isInteger(at) ? at : undefined;
}

/** `a` must not be below `b` (both valid integers), reported on `a`. */
function atLeast(a: string, b: string, text: string): CrossFieldRule {
  return {
    text,
    check(doc, p) {
      const [x, y] = [int(doc, a), int(doc, b)];
      if (x !== undefined && y !== undefined && x < y) p.add(a, `must be >= ${b} (${y})`);
    },
  };
}

export const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    text: '`adminPort` differs from `port` (both 0 is fine: the system picks two ports).',
    check(doc, p) {
      const [port, admin] = [int(doc, 'port'), int(doc, 'adminPort')];
      if (port !== undefined && port === admin && port !== 0) p.add('adminPort', `must differ from port (${port})`);
    },
  },
  atLeast('buffer.maxTotalBytes', 'buffer.maxBodyBytes', '`buffer.maxTotalBytes` >= `buffer.maxBodyBytes`.'),
  atLeast('upstream.ejectMaxMs', 'upstream.ejectBaseMs', '`upstream.ejectMaxMs` >= `upstream.ejectBaseMs`.'),
  {
    text: '`server.headersTimeoutMs` <= `server.requestTimeoutMs` (Node refuses a head deadline after the whole request\'s).',
    check(doc, p) {
      const [head, whole] = [int(doc, 'server.headersTimeoutMs'), int(doc, 'server.requestTimeoutMs')];
      if (head !== undefined && whole !== undefined && head > whole) p.add('server.headersTimeoutMs', `must be <= server.requestTimeoutMs (${whole})`);
    },
  },
  {
    text: '`freeze.inflightGraceMs` < `buffer.windowMs` when set (held requests wait for the flip, which comes after the grace); unset, it is at most half the window.',
    check(doc, p, ctx) {
      const [grace, window] = [int(doc, 'freeze.inflightGraceMs'), int(doc, 'buffer.windowMs')];
      if (ctx.graceGiven && grace !== undefined && window !== undefined && grace >= window) {
        p.add('freeze.inflightGraceMs', `must be less than buffer.windowMs (${window})`);
      }
    },
  },
  {
    text: 'Every `routes[].prefix` appears once.',
    check(doc, p) {
      if (!Array.isArray(doc.routes)) return;
      const seen = new Set<string>();
      doc.routes.forEach((r: unknown, i) => {
        const prefix = typeof r === 'object' && r !== null ? (r as Doc).prefix : undefined;
        if (typeof prefix !== 'string') return;
        if (seen.has(prefix)) p.add(`routes[${i}].prefix`, `duplicate prefix ${JSON.stringify(prefix)}`);
        seen.add(prefix);
      });
    },
  },
];
