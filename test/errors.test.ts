// The error table (the fastify lib/errors.js habit): every name makes an error with a stable
// code, and the request-path errors match the contract (DESIGN.md §3) in name and status.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CellgateError, ERROR_NAMES, EXIT, cgError, errorSpec, isCellgateError } from '../src/errors';

/** The contract's HTTP error codes (DESIGN.md §3 "Errors" and "Epoch fencing"; issue 8 adds ZONE_OVERLOADED and BODY_TOO_LARGE) and their statuses. */
const CONTRACT_HTTP_ERRORS: Record<string, number> = {
  NO_USER_ID: 400,
  BAD_USER_ID: 400,
  ZONE_DOWN: 503,
  NO_ROUTING_TABLE: 503,
  UPSTREAM_UNAVAILABLE: 502,
  UPSTREAM_TIMEOUT: 504,
  BUFFER_TIMEOUT: 504,
  NOT_CELL_OWNER: 421,
  ZONE_OVERLOADED: 503,
  HEADERS_TOO_LARGE: 431,
  BODY_TOO_LARGE: 413,
};

// Pinned: adding an error means adding it here on purpose (and to the docs that list them).
const ERROR_COUNT = 28;
const PINNED_NAMES = [
  'NO_USER_ID', 'BAD_USER_ID', 'ZONE_DOWN', 'NO_ROUTING_TABLE', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'BUFFER_TIMEOUT',
  'ZONE_OVERLOADED', 'REQUEST_TIMEOUT', 'HEADERS_TOO_LARGE', 'BODY_TOO_LARGE', 'NOT_CELL_OWNER', 'NOT_FOUND', 'BAD_REQUEST', 'INTERNAL_ERROR',
  'USAGE', 'INVALID_TOPOLOGY', 'INVALID_TABLE', 'INVALID_CONFIG', 'CONFLICT', 'ALREADY_INITIALIZED', 'NOT_INITIALIZED',
  'STORE_UNAVAILABLE', 'PLAN_REFUSED', 'ENDPOINT_TAKEN', 'NOT_CONVERGED', 'UNAUTHORIZED', 'RELAY_FULL',
];

test('the number and names of errors are pinned', (t) => {
  t.is(ERROR_NAMES.length, ERROR_COUNT);
  t.deepEqual([...ERROR_NAMES].sort(), [...PINNED_NAMES].sort());
  t.is(new Set(ERROR_NAMES).size, ERROR_NAMES.length);
  t.true(Object.isFrozen(ERROR_NAMES));
});

test('every error name makes a CellgateError with code CG_ERR_<name>', (t) => {
  for (const name of ERROR_NAMES) {
    t.regex(name, /^[A-Z][A-Z_]*[A-Z]$/);
    const spec = errorSpec(name);
    const err = cgError(name);
    t.true(err instanceof CellgateError && err instanceof Error);
    t.is(err.name, 'CellgateError');
    t.is(err.code, `CG_ERR_${name}`);
    t.is(err.error, name);
    t.is(err.message, spec.message);
    t.true(err.message.length > 0);
    t.is(err.status, spec.status);
    t.is(err.exit, spec.exit);
    t.is(err.retryable, spec.retryable);
    t.true(err.status >= 400 && err.status < 600, `${name} status ${err.status}`);
    t.true(Object.values(EXIT).includes(err.exit as 0), `${name} exit ${err.exit}`);
    t.deepEqual(err.toJSON(), { error: name, message: spec.message });
    t.deepEqual(JSON.parse(JSON.stringify(err)), { error: name, message: spec.message });
    t.true(isCellgateError(err));
    t.true(isCellgateError(err, name));
  }
});

test('the contract\'s HTTP errors exist with their statuses', (t) => {
  for (const [name, status] of Object.entries(CONTRACT_HTTP_ERRORS)) {
    t.true((ERROR_NAMES as readonly string[]).includes(name), `${name} missing`);
    t.is(cgError(name as (typeof ERROR_NAMES)[number]).status, status, name);
  }
});

test('a message, a cause and detail are kept; detail never reaches the JSON body', (t) => {
  const cause = new Error('etcd said no');
  const err = cgError('STORE_UNAVAILABLE', 'etcd at etcd-1.internal:2379 is unreachable', { cause, detail: { endpoint: 'etcd-1.internal:2379' } });
  t.is(err.message, 'etcd at etcd-1.internal:2379 is unreachable');
  t.is(err.cause, cause);
  t.deepEqual(err.detail, { endpoint: 'etcd-1.internal:2379' });
  t.deepEqual(err.toJSON(), { error: 'STORE_UNAVAILABLE', message: 'etcd at etcd-1.internal:2379 is unreachable' });
  t.is(new CellgateError('CONFLICT').cause, undefined);
});

test('isCellgateError matches on the code, not the class', (t) => {
  t.false(isCellgateError(new Error('plain')));
  t.false(isCellgateError(null));
  t.false(isCellgateError({ code: 'CG_ERR_ZONE_DOWN' }), 'not an Error');
  t.false(isCellgateError(cgError('ZONE_DOWN'), 'CONFLICT'));
  const foreign = Object.assign(new Error('from another copy of the module'), { code: 'CG_ERR_CONFLICT', error: 'CONFLICT' });
  t.true(isCellgateError(foreign, 'CONFLICT'));
});

test('exit codes are the contract\'s', (t) => {
  t.deepEqual({ ...EXIT }, { OK: 0, ERROR: 1, USAGE: 2, REFUSED: 3, NOT_CONVERGED: 4 });
  t.true(Object.isFrozen(EXIT));
  t.is(cgError('INVALID_TOPOLOGY').exit, 3);
  t.is(cgError('CONFLICT').exit, 3);
  t.is(cgError('NOT_CONVERGED').exit, 4);
  t.is(cgError('USAGE').exit, 2);
});

test('the error table of docs/design.md lists exactly the errors of src/errors.ts, with their status, exit code and retryability', (t) => {
  const design = readFileSync(join(__dirname, '..', '..', 'docs', 'design.md'), 'utf8');
  const rows = [...design.matchAll(/^\| `([A-Z_]+)` \| (\d+) \| (\d) \| (yes|no) \|/gm)];
  const documented = new Map(rows.map((m) => [m[1], { status: Number(m[2]), exit: Number(m[3]), retryable: m[4] === 'yes' }]));
  t.deepEqual([...documented.keys()].sort(), [...ERROR_NAMES].sort(), 'same names both ways');
  for (const name of ERROR_NAMES) {
    const err = cgError(name);
    t.deepEqual(documented.get(name), { status: err.status, exit: err.exit, retryable: err.retryable }, name);
  }
});
