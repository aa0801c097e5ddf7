// Every failure cellgate reports, in one table (the fastify `lib/errors.js` habit).
// Match on `err.code`, never on `instanceof` or on messages.
//
// `error` is the public name from the contract (the JSON `error` field of HTTP replies),
// `code` is `CG_ERR_<error>`, `status` the HTTP status for request-path errors,
// `exit` the cellctl/cellgate exit code for control-plane errors, and `retryable` says
// whether trying the same thing again later may succeed.

export const EXIT = Object.freeze({ OK: 0, ERROR: 1, USAGE: 2, REFUSED: 3, NOT_CONVERGED: 4 });

interface ErrorSpec {
  readonly status: number;
  readonly exit: number;
  readonly retryable: boolean;
  readonly message: string;
}

const SPECS = {
  // Request path (gateway replies).
  NO_USER_ID: { status: 400, exit: EXIT.USAGE, retryable: false, message: 'request carries no user id' },
  BAD_USER_ID: { status: 400, exit: EXIT.USAGE, retryable: false, message: 'user id is not usable: too long, control characters, not UTF-8, or two different ids' },
  ZONE_DOWN: { status: 503, exit: EXIT.ERROR, retryable: true, message: 'the zone serving this request is down' },
  NO_ROUTING_TABLE: { status: 503, exit: EXIT.ERROR, retryable: true, message: 'no routing table loaded yet' },
  UPSTREAM_UNAVAILABLE: { status: 502, exit: EXIT.ERROR, retryable: true, message: 'no upstream endpoint of the zone is available' },
  UPSTREAM_TIMEOUT: { status: 504, exit: EXIT.ERROR, retryable: true, message: 'the upstream did not answer in time' },
  BUFFER_TIMEOUT: { status: 504, exit: EXIT.ERROR, retryable: true, message: 'the request was held during a planned move for too long' },
  ZONE_OVERLOADED: { status: 503, exit: EXIT.ERROR, retryable: true, message: 'the zone serving this request has too many requests waiting' },
  REQUEST_TIMEOUT: { status: 408, exit: EXIT.ERROR, retryable: false, message: 'the client did not send its whole request before its deadline' },
  HEADERS_TOO_LARGE: { status: 431, exit: EXIT.USAGE, retryable: false, message: 'the request head is larger than the gateway accepts' },
  BODY_TOO_LARGE: { status: 413, exit: EXIT.USAGE, retryable: false, message: 'the request body is too large to hold during a planned move' },
  NOT_CELL_OWNER: { status: 421, exit: EXIT.ERROR, retryable: true, message: 'this zone does not own the cell at that epoch' },
  NOT_FOUND: { status: 404, exit: EXIT.ERROR, retryable: false, message: 'not found' },
  BAD_REQUEST: { status: 400, exit: EXIT.USAGE, retryable: false, message: 'malformed request' },
  INTERNAL_ERROR: { status: 500, exit: EXIT.ERROR, retryable: true, message: 'internal gateway error' },
  // Control plane (stores, planner, CLI).
  USAGE: { status: 400, exit: EXIT.USAGE, retryable: false, message: 'bad usage' },
  INVALID_TOPOLOGY: { status: 400, exit: EXIT.REFUSED, retryable: false, message: 'invalid topology' },
  INVALID_TABLE: { status: 400, exit: EXIT.REFUSED, retryable: false, message: 'invalid routing table' },
  INVALID_CONFIG: { status: 400, exit: EXIT.REFUSED, retryable: false, message: 'invalid gateway configuration' },
  CONFLICT: { status: 409, exit: EXIT.REFUSED, retryable: true, message: 'the routing table was changed by someone else' },
  ALREADY_INITIALIZED: { status: 409, exit: EXIT.REFUSED, retryable: false, message: 'the store already holds a routing table' },
  NOT_INITIALIZED: { status: 404, exit: EXIT.ERROR, retryable: false, message: 'the store holds no routing table (run cellctl init)' },
  STORE_UNAVAILABLE: { status: 503, exit: EXIT.ERROR, retryable: true, message: 'the routing-table store is unreachable' },
  PLAN_REFUSED: { status: 409, exit: EXIT.REFUSED, retryable: false, message: 'the change was refused' },
  ENDPOINT_TAKEN: { status: 409, exit: EXIT.REFUSED, retryable: false, message: 'the endpoint id is registered by another live instance' },
  NOT_CONVERGED: { status: 504, exit: EXIT.NOT_CONVERGED, retryable: true, message: 'not every gateway applied the change in time' },
  // Presence relay (src/relay).
  UNAUTHORIZED: { status: 401, exit: EXIT.ERROR, retryable: false, message: 'missing or wrong bearer token' },
  RELAY_FULL: { status: 503, exit: EXIT.ERROR, retryable: true, message: 'the presence relay holds as many gateways as it may' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof SPECS;
export const ERROR_NAMES = Object.freeze(Object.keys(SPECS) as ErrorName[]);

export class CellgateError extends Error {
  readonly code: `CG_ERR_${ErrorName}`;
  readonly error: ErrorName;
  readonly status: number;
  readonly exit: number;
  readonly retryable: boolean;
  /** Structured detail for --json output and logs (never shown to HTTP clients). */
  readonly detail?: unknown;

  constructor(error: ErrorName, message?: string, options?: { cause?: unknown; detail?: unknown }) {
    const spec: ErrorSpec = SPECS[error];
    super(message ?? spec.message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'CellgateError';
    this.error = error;
    this.code = `CG_ERR_${error}`;
    this.status = spec.status;
    this.exit = spec.exit;
    this.retryable = spec.retryable;
    this.detail = options?.detail;
  }

  /** The contract's JSON error body. */
  toJSON(): { error: ErrorName; message: string } {
    return { error: this.error, message: this.message };
  }
}

export function cgError(error: ErrorName, message?: string, options?: { cause?: unknown; detail?: unknown }): CellgateError {
  return new CellgateError(error, message, options);
}

export function isCellgateError(err: unknown, error?: ErrorName): err is CellgateError {
  return err instanceof Error && typeof (err as CellgateError).code === 'string'
    && (err as CellgateError).code.startsWith('CG_ERR_')
    && (error === undefined || (err as CellgateError).error === error);
}

export function errorSpec(error: ErrorName): ErrorSpec {
  return SPECS[error];
}
