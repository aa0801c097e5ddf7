// The gateway configuration: defaults with units, validation with the path of every bad
// key (INVALID_CONFIG), frozen result, YAML and JSON files, flag overrides.
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isCellgateError } from '../src/errors';
import { DEFAULT_CONFIG, GatewayConfigSchema, loadGatewayConfigFile, parseGatewayConfig, redactedConfig } from '../src/router/config';
import { CONFIG_DOCS_PATH, renderConfigDocs } from '../src/router/config/docs';
import { Type } from '@sinclair/typebox';
import { Problems } from '../src/cells/check';
import { applyEnv, envKeys } from '../src/router/config/env';
import { compileRouteMatcher, routeServiceProblems, strippedUrl } from '../src/router/route-rules';
import { tableFromTopologyText } from '../src/cells/topology';

function problems(doc: unknown, overrides?: Record<string, unknown>, env?: NodeJS.ProcessEnv): string {
  try {
    parseGatewayConfig(doc, overrides, { env });
  } catch (err) {
    if (!isCellgateError(err, 'INVALID_CONFIG')) throw err;
    return err.message;
  }
  throw new Error('expected INVALID_CONFIG');
}

test('defaults, frozen', (t) => {
  const c = parseGatewayConfig({});
  t.like(c, {
    port: 8080, adminPort: 9090, host: '127.0.0.1', adminHost: '127.0.0.1', zone: null, trustProxy: false, snapshotPath: true, shutdownGraceMs: 10_000,
    buffer: { windowMs: 10_000, maxRequests: 1000, maxBodyBytes: 1_048_576, maxTotalBytes: 64 * 1_048_576 },
    upstream: { requestTimeoutMs: 30_000, ejectAfterFailures: 3, ejectBaseMs: 1000, ejectMaxMs: 30_000, connectionsPerEndpoint: 128, maxPendingPerZone: 1024 },
    server: { headersTimeoutMs: 60_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 75_000, maxConnections: 10_000 },
  });
  t.is(parseGatewayConfig({ host: '0.0.0.0' }).adminHost, '127.0.0.1', 'the admin listener stays on loopback when traffic goes public');
  t.true(Object.isFrozen(c.server));
  t.deepEqual(c.userId.sources, [{ header: 'x-user-id' }]);
  t.deepEqual(c.routes, [{ prefix: '/', class: 'unit' }]);
  t.regex(c.id, /-\d+$/, 'hostname-pid');
  t.true(Object.isFrozen(c) && Object.isFrozen(c.buffer) && Object.isFrozen(c.routes[0]));
  t.true(Object.isFrozen(DEFAULT_CONFIG));
  t.deepEqual(parseGatewayConfig(null).port, 8080);
});

test('every bad key is reported with its path', (t) => {
  const msg = problems({
    port: 70000, adminPort: 'x', bogus: 1, zone: 'bad zone!', trustProxy: 'yes',
    userId: { sources: [{ header: 'x-user-id' }, { cookie: '' }, { path: '/users/:id' }, { smell: 'x' }, { header: 'a', cookie: 'b' }] },
    routes: [{ prefix: 'api', class: 'unit' }, { prefix: '/g', class: 'galactic' }, { prefix: '/g', class: 'global', extra: 1 }],
    buffer: { windowMs: 0, maxRequests: -1, extra: true, maxBodyBytes: 2000, maxTotalBytes: 1000 },
    upstream: { ejectBaseMs: 5000, ejectMaxMs: 1000, maxPendingPerZone: -1 },
    server: { headersTimeoutMs: 5000, requestTimeoutMs: 1000, maxConnections: 0, slowloris: 1 },
    adminHost: '',
    id: 'gw\u001b[2J 1',
  });
  for (const path of [
    'port:', 'adminPort:', 'bogus: unknown key', 'zone:', 'trustProxy:',
    'userId.sources[1].cookie', 'userId.sources[2].path', 'userId.sources[3].smell', 'userId.sources[4]',
    'routes[0].prefix: must start with /', 'routes[1].class', 'routes[2].extra: unknown key', 'routes[2].prefix: duplicate',
    'buffer.windowMs', 'buffer.maxRequests', 'buffer.extra', 'upstream.ejectMaxMs',
    'buffer.maxTotalBytes: must be >= buffer.maxBodyBytes', 'upstream.maxPendingPerZone', 'server.headersTimeoutMs: must be <=',
    'server.maxConnections', 'server.slowloris: unknown key', 'adminHost', 'id:',
  ]) t.true(msg.includes(path), `${path} in ${msg}`);
});

test('the admin port must differ from the traffic port; flags override the file', (t) => {
  t.regex(problems({ port: 8000, adminPort: 8000 }), /adminPort: must differ from port/);
  t.regex(problems({ port: 8000 }, { adminPort: 8000 }), /adminPort/);
  t.notThrows(() => parseGatewayConfig({ port: 0, adminPort: 0 }), 'two ephemeral ports are fine');
  const c = parseGatewayConfig({ port: 1000, zone: 'a', id: 'x' }, { port: 2000, zone: undefined, id: 'flag-id' });
  t.is(c.port, 2000);
  t.is(c.zone, 'a', 'an undefined override keeps the file value');
  t.is(c.id, 'flag-id');
});

test('YAML and JSON files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const yamlPath = join(dir, 'gw.yaml');
  await writeFile(yamlPath, 'port: 8081\nzone: sh-a\nuserId:\n  sources:\n    - header: X-User\n    - cookie: uid\nroutes:\n  - { prefix: /, class: unit }\n  - { prefix: /static, class: global }\n');
  const y = await loadGatewayConfigFile(yamlPath, { adminPort: 9091 });
  t.like(y, { port: 8081, adminPort: 9091, zone: 'sh-a' });
  t.deepEqual(y.userId.sources, [{ header: 'x-user' }, { cookie: 'uid' }]);
  const jsonPath = join(dir, 'gw.json');
  await writeFile(jsonPath, JSON.stringify({ port: 8082, buffer: { windowMs: 500 } }));
  t.like(await loadGatewayConfigFile(jsonPath), { port: 8082, buffer: { windowMs: 500, maxRequests: 1000 } });
  await writeFile(jsonPath, '{ nope');
  const err = await t.throwsAsync(loadGatewayConfigFile(jsonPath));
  t.true(isCellgateError(err, 'INVALID_CONFIG'));
  const missing = await t.throwsAsync(loadGatewayConfigFile(join(dir, 'absent.yaml')));
  t.true(isCellgateError(missing, 'INVALID_CONFIG'));
});

// User id extraction: test/router-user-id.test.ts.
test('route classification', (t) => {
  const match = compileRouteMatcher([{ prefix: '/', class: 'unit' }, { prefix: '/api/', class: 'global' }, { prefix: '/api/near', class: 'city' }]);
  const classify = (url: string) => match(url)?.class ?? null;
  t.is(classify('/x'), 'unit');
  t.is(classify('/api/x'), 'global');
  t.is(classify('/api'), 'unit', '/api/ needs the slash');
  t.is(classify('/api/near?x'), 'city');
  t.is(classify('/api/nearby'), 'global');
  t.is(compileRouteMatcher([{ prefix: '/only', class: 'unit' }])('/other'), null);
});

test('a route rule names a service (default "default") and may strip its prefix', (t) => {
  const match = compileRouteMatcher(parseGatewayConfig({ routes: [{ prefix: '/', class: 'unit' }, { prefix: '/orders/', class: 'unit', service: 'orders', stripPrefix: true }] }).routes);
  t.deepEqual(match('/x'), { prefix: '/', class: 'unit', service: 'default', stripPrefix: false });
  t.deepEqual(match('/orders/1'), { prefix: '/orders/', class: 'unit', service: 'orders', stripPrefix: true });
  const bad = problems({ routes: [{ prefix: '/', class: 'unit', service: 'no such' }, { prefix: '/a', class: 'unit', service: '', stripPrefix: 'yes' }] });
  t.regex(bad, /routes\[0\]\.service: must be a service name/);
  t.regex(bad, /routes\[1\]\.service: must be a non-empty string/);
  t.regex(bad, /routes\[1\]\.stripPrefix: must be true or false/);
});

test('stripPrefix sends the rest of the path, at least "/", query kept (as nginx\'s proxy_pass with a URI)', (t) => {
  t.is(strippedUrl('/orders/42?x=1', '/orders/'), '/42?x=1');
  t.is(strippedUrl('/orders/', '/orders/'), '/');
  t.is(strippedUrl('/orders//x', '/orders/'), '/x', 'the slashes it would start with are one (never "//host", another host to a URL parser)');
  t.is(strippedUrl('/pay/\\evil/x', '/pay'), '/evil/x', 'a backslash is a slash to a URL parser');
  t.is(strippedUrl('/pay//', '/pay'), '/');
  t.is(strippedUrl('/orders/x//y', '/orders/'), '/x//y', 'the rest of the path is not normalised');
  t.is(strippedUrl('/pay', '/pay'), '/');
  t.is(strippedUrl('/pay?q', '/pay'), '/?q');
  t.is(strippedUrl('/pay/x', '/pay'), '/x');
  t.is(strippedUrl('/x?y', '/'), '/x?y', 'prefix / strips nothing');
});

test('routes whose service no zone of the table offers are named by key path', (t) => {
  const table = tableFromTopologyText([
    'name: s', 'cells: 2', 'zones:',
    '  - { name: a, region: r, city: c, capacity: 10, upstreams: [], services: { orders: { upstreams: [] } } }',
    '  - { name: b, region: r, city: c, capacity: 10, upstreams: ["http://127.0.0.1:1"] }',
  ].join('\n'));
  const routes = parseGatewayConfig({ routes: [{ prefix: '/', class: 'unit' }, { prefix: '/o/', class: 'unit', service: 'orders' }, { prefix: '/p/', class: 'city', service: 'payments' }] }).routes;
  t.deepEqual(routeServiceProblems(routes, table), [
    { path: 'routes[2].service', message: 'no zone of the routing table offers service "payments" (it offers default, orders)' },
  ], 'default is offered by every zone; orders by the zone that lists it (even with no static endpoint)');
});

test('config/gateway.yaml shows the true defaults of every key it lists', async (t) => {
  const file = await loadGatewayConfigFile(join(__dirname, '..', '..', 'config', 'gateway.yaml'), { store: undefined });
  const d = parseGatewayConfig({});
  for (const key of ['port', 'adminPort', 'host', 'adminHost', 'zone', 'userId', 'routes', 'buffer', 'upstream', 'server', 'trustProxy',
    'snapshotPath', 'shutdownGraceMs', 'prefix', 'etcd', 'tls', 'freeze', 'logLevel', 'accessLog', 'accessLogUserKey'] as const) {
    t.deepEqual(file[key], d[key], key);
  }
});

test('every problem listed once, in the INVALID_CONFIG detail too; unknown keys get the nearest known one', (t) => {
  let detail: { path: string; message: string }[] = [];
  try {
    parseGatewayConfig({ prot: 8000, buffer: { windowMS: 5 }, upstream: { requestTimeout: 5 }, userId: { sources: [{ hedaer: 'x' }] }, zzz: 1, tls: { cert: 'a' } });
  } catch (err) {
    if (!isCellgateError(err, 'INVALID_CONFIG')) throw err;
    detail = err.detail as typeof detail;
  }
  const byPath = Object.fromEntries(detail.map((d) => [d.path, d.message]));
  t.is(byPath.prot, 'unknown key (did you mean port?)');
  t.is(byPath['buffer.windowMS'], 'unknown key (did you mean windowMs?)');
  t.is(byPath['upstream.requestTimeout'], 'unknown key (did you mean requestTimeoutMs?)');
  t.regex(byPath['userId.sources[0].hedaer'] ?? '', /did you mean header\?/);
  t.is(byPath.zzz, 'unknown key', 'nothing near: no guess');
  t.is(byPath['tls.key'], 'is required');
  t.is(detail.length, 6, JSON.stringify(detail));
});

test('CELLGATE_* variables: typed by the schema, over the file, under the flags', (t) => {
  const env = {
    CELLGATE_PORT: '8181', CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS: '1234', CELLGATE_TRUST_PROXY: 'true', CELLGATE_ZONE: 'null',
    CELLGATE_ROUTES: '[{"prefix":"/","class":"unit"},{"prefix":"/g/","class":"global"}]', CELLGATE_TLS_CERT: '/c.pem', CELLGATE_TLS_KEY: '/k.pem',
    CELLGATE_ACCESS_LOG: '1', CELLGATE_LOG_LEVEL: 'warn', CELLGATE_HOST: '', CELLGATE_UNRELATED: 'x',
  };
  const c = parseGatewayConfig({ port: 7000, zone: 'file-zone', upstream: { connectTimeoutMs: 99 }, host: '0.0.0.0' }, { port: 9999 }, { env });
  t.is(c.port, 9999, 'the flag wins over the variable');
  t.is(c.upstream.requestTimeoutMs, 1234, 'the variable wins over the default');
  t.is(c.upstream.connectTimeoutMs, 99, 'a variable for one key keeps the file\'s others');
  t.is(c.zone, null, 'null for a nullable key');
  t.true(c.trustProxy && c.accessLog);
  t.is(c.logLevel, 'warn');
  t.is(c.host, '0.0.0.0', 'an empty variable is unset');
  t.deepEqual(c.tls, { cert: '/c.pem', key: '/k.pem' });
  t.is(c.routes.length, 2);
  t.is(parseGatewayConfig({ port: 7000 }, {}, { env }).port, 8181, 'the variable wins over the file');
  t.is(parseGatewayConfig({ port: 7000 }).port, 7000, 'no environment unless given');
  // A bad value is named with its key and its variable.
  const msg = problems({}, {}, { CELLGATE_PORT: 'eighty', CELLGATE_BUFFER_WINDOW_MS: '0', CELLGATE_ROUTES: '[nope', CELLGATE_ACCESS_LOG: 'maybe' });
  t.regex(msg, /port \(CELLGATE_PORT\): must be an integer in \[0, 65535\], got string "eighty"/);
  t.regex(msg, /buffer\.windowMs \(CELLGATE_BUFFER_WINDOW_MS\): must be an integer/);
  t.regex(msg, /routes: CELLGATE_ROUTES is not JSON/);
  t.regex(msg, /accessLog \(CELLGATE_ACCESS_LOG\): must be true or false/);
});

test('every key has its own variable', (t) => {
  const keys = envKeys(GatewayConfigSchema);
  t.is(new Set(keys.map((k) => k.name)).size, keys.length);
  t.true(keys.some((k) => k.name === 'CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS' && k.path.join('.') === 'upstream.requestTimeoutMs'));
  t.true(keys.some((k) => k.name === 'CELLGATE_USER_ID_SOURCES' && k.kind === 'json'));
});

test('variables of keys with several forms: a list of strings as a,b,c; text where JSON does not parse', (t) => {
  const schema = Type.Object({
    etcd: Type.Object({ endpoints: Type.Array(Type.String()) }),
    snapshotPath: Type.Union([Type.String(), Type.Literal(false), Type.Null()]),
    routes: Type.Array(Type.Object({ prefix: Type.String() })),
  });
  const keys = envKeys(schema);
  t.deepEqual(keys.map((k) => k.name), ['CELLGATE_ETCD_ENDPOINTS', 'CELLGATE_SNAPSHOT_PATH', 'CELLGATE_ROUTES']);
  const set = (env: Record<string, string>) => {
    const doc: Record<string, unknown> = {};
    const p = new Problems();
    applyEnv(doc, env, keys, p, new Map());
    return { doc, problems: p.summary() };
  };
  t.deepEqual(set({ CELLGATE_ETCD_ENDPOINTS: 'https://a:2379, https://b:2379' }).doc, { etcd: { endpoints: ['https://a:2379', 'https://b:2379'] } });
  t.deepEqual(set({ CELLGATE_ETCD_ENDPOINTS: '["https://a:2379"]' }).doc, { etcd: { endpoints: ['https://a:2379'] } });
  t.deepEqual(set({ CELLGATE_SNAPSHOT_PATH: '/var/lib/x.json' }).doc, { snapshotPath: '/var/lib/x.json' });
  t.deepEqual(set({ CELLGATE_SNAPSHOT_PATH: 'false' }).doc, { snapshotPath: false });
  t.deepEqual(set({ CELLGATE_SNAPSHOT_PATH: 'null' }).doc, { snapshotPath: null });
  t.regex(set({ CELLGATE_ROUTES: 'a,b' }).problems, /routes: CELLGATE_ROUTES is not JSON/);
});

test('cross-field rules; the grace default fits a short window; secrets redacted for printing', (t) => {
  t.regex(problems({ buffer: { windowMs: 1000 }, freeze: { inflightGraceMs: 1000 } }), /freeze\.inflightGraceMs: must be less than buffer\.windowMs \(1000\)/);
  t.is(parseGatewayConfig({ buffer: { windowMs: 1000 } }).freeze.inflightGraceMs, 500);
  t.regex(problems({ accessLogUserKey: 'short' }), /accessLogUserKey: must be a string of at least 16 characters, or null/);
  const c = parseGatewayConfig({ accessLogUserKey: 'a-very-secret-key-0123' });
  t.is(c.accessLogUserKey, 'a-very-secret-key-0123');
  const shown = JSON.stringify(redactedConfig(c));
  t.false(shown.includes('a-very-secret'));
  t.true(shown.includes('"accessLogUserKey":"<redacted>"'));
  t.true(Object.isFrozen(c.userId.sources[0]));
  t.deepEqual(parseGatewayConfig({}).userId.sources, [{ header: 'x-user-id' }], 'defaults are copies: the schema\'s stay as they are');
});

test('docs/configuration.md is generated from the schema and up to date (npm run docs:config)', async (t) => {
  const onDisk = await readFile(CONFIG_DOCS_PATH, 'utf8');
  t.is(onDisk, renderConfigDocs(), 'docs/configuration.md is out of date: run npm run docs:config');
  for (const k of envKeys(GatewayConfigSchema)) t.true(onDisk.includes(`\`${k.name}\``), k.name);
});
