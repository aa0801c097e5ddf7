// The gateway configuration: defaults with units, validation with the path of every bad
// key (INVALID_CONFIG), frozen result, YAML and JSON files, flag overrides.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isCellgateError } from '../src/errors';
import { DEFAULT_CONFIG, loadGatewayConfigFile, parseGatewayConfig } from '../src/router/config';
import { compileRouteClassifier } from '../src/router/route-rules';

function problems(doc: unknown, overrides?: Record<string, unknown>): string {
  try {
    parseGatewayConfig(doc, overrides);
  } catch (err) {
    if (!isCellgateError(err, 'INVALID_CONFIG')) throw err;
    return err.message;
  }
  throw new Error('expected INVALID_CONFIG');
}

test('defaults, frozen', (t) => {
  const c = parseGatewayConfig({});
  t.like(c, {
    port: 8080, adminPort: 9090, host: '127.0.0.1', zone: null, trustProxy: false, snapshotPath: true, shutdownGraceMs: 10_000,
    buffer: { windowMs: 10_000, maxRequests: 1000, maxBodyBytes: 1_048_576 },
    upstream: { ejectAfterFailures: 3, ejectBaseMs: 1000, ejectMaxMs: 30_000 },
  });
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
    buffer: { windowMs: 0, maxRequests: -1, extra: true },
    upstream: { ejectBaseMs: 5000, ejectMaxMs: 1000 },
  });
  for (const path of [
    'port:', 'adminPort:', 'bogus: unknown key', 'zone:', 'trustProxy:',
    'userId.sources[1].cookie', 'userId.sources[2].path', 'userId.sources[3].smell', 'userId.sources[4]',
    'routes[0].prefix: must start with /', 'routes[1].class', 'routes[2].extra: unknown key', 'routes[2].prefix: duplicate',
    'buffer.windowMs', 'buffer.maxRequests', 'buffer.extra', 'upstream.ejectMaxMs',
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
  const classify = compileRouteClassifier([{ prefix: '/', class: 'unit' }, { prefix: '/api/', class: 'global' }, { prefix: '/api/near', class: 'city' }]);
  t.is(classify('/x'), 'unit');
  t.is(classify('/api/x'), 'global');
  t.is(classify('/api'), 'unit', '/api/ needs the slash');
  t.is(classify('/api/near?x'), 'city');
  t.is(classify('/api/nearby'), 'global');
  t.is(compileRouteClassifier([{ prefix: '/only', class: 'unit' }])('/other'), null);
});
