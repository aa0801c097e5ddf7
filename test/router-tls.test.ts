// TLS on the traffic port (tls: {cert, key}) with certificates made by openssl for the test:
// the gateway serves HTTPS (upstreams still get x-forwarded-proto https), a reload serves the
// new certificate to new connections, a bad pair keeps the old one; and `cellgate serve`
// reloads on SIGHUP.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { parseGatewayConfig } from '../src/router/config';
import { createGateway } from '../src/router/gateway';
import { cellctl } from './helpers/cli';
import { startGatewayProcess, topologyYaml } from './helpers/e2e';
import { MemoryStore } from './helpers/memory-store';
import { tableFor } from './helpers/router-fixture';
import { startUpstreams, stopAll } from './helpers/upstreams';
import { until } from './helpers/wait';

/** A self-signed certificate for 127.0.0.1 named `cn`: {cert, key} paths. */
function makeCert(dir: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${cn}.crt`);
  const key = join(dir, `${cn}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

interface Served { status: number; cn: string; body: Record<string, unknown> }

/** One HTTPS request on a new connection: the status, the certificate's CN, the JSON body. */
function httpsGet(url: string, user: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { headers: { 'x-user-id': user }, rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
      const cn = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cn, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

test('HTTPS on the traffic port; a reload serves the new certificate to new connections; a bad pair keeps the old one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const one = makeCert(dir, 'cert-one');
  const two = makeCert(dir, 'cert-two');
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  await copyFile(one.cert, live.cert);
  await copyFile(one.key, live.key);
  const ups = await startUpstreams('up-a');
  t.teardown(() => stopAll(ups));
  const store = new MemoryStore(tableFor([{ name: 'zone-a', upstreams: [ups[0]!.url] }], { cells: 4 }));
  const gw = createGateway({
    config: parseGatewayConfig({ port: 0, adminPort: 0, id: 'gw-tls', tls: live }), store, log: () => undefined, logDestination: { write: () => undefined }, processMetrics: false,
  });
  t.teardown(() => gw.shutdown());
  const addr = await gw.start();
  await gw.waitForVersion(1);
  t.regex(addr.traffic, /^https:\/\/127\.0\.0\.1:\d+$/);

  const first = await httpsGet(`${addr.traffic}/a`, 'alice');
  t.is(first.status, 200);
  t.is(first.cn, 'cert-one');
  t.is((first.body.headers as Record<string, string>)['x-forwarded-proto'], 'https');

  await copyFile(two.cert, live.cert);
  await copyFile(two.key, live.key);
  await gw.reloadTls();
  const second = await httpsGet(`${addr.traffic}/a`, 'alice');
  t.is(second.status, 200);
  t.is(second.cn, 'cert-two');

  // A key that does not belong to the certificate: refused, the served pair stays.
  await copyFile(one.key, live.key);
  await t.throwsAsync(gw.reloadTls());
  t.is((await httpsGet(`${addr.traffic}/a`, 'alice')).cn, 'cert-two');
});

for (const workers of [1, 2]) test(`cellgate serve with tls (${workers} worker(s)): SIGHUP makes it serve the new certificate`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), `cellgate-tls-hup${workers}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const one = makeCert(dir, 'hup-one');
  const two = makeCert(dir, 'hup-two');
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  await copyFile(one.cert, live.cert);
  await copyFile(one.key, live.key);
  const ups = await startUpstreams('up-a');
  t.teardown(() => stopAll(ups));
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, topologyYaml([{ name: 'zone-a', region: 'east', city: 'sh', url: ups[0]!.url }], 4));
  const tablePath = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', topology, '--file', tablePath, '--yes']);
  t.is(init.code, 0, init.stderr);
  const config = join(dir, 'gw.yaml');
  await writeFile(config, `port: 0\nadminPort: 0\ntls:\n  cert: ${live.cert}\n  key: ${live.key}\n`);
  const gw = await startGatewayProcess(['--config', config, '--store', `file:${tablePath}`, '--workers', String(workers)], `gw-hup${workers}`);
  t.teardown(async () => { await gw.stop(); });
  t.regex(gw.traffic, /^https:/);
  await until('every worker listening', () => gw.stderr().split('"event":"listening"').length - 1 === workers);
  await until('served', async () => (await httpsGet(`${gw.traffic}/a`, 'alice').catch(() => null))?.status === 200);
  t.is((await httpsGet(`${gw.traffic}/a`, 'alice')).cn, 'hup-one');

  await copyFile(two.cert, live.cert);
  await copyFile(two.key, live.key);
  gw.child.kill('SIGHUP');
  await until('the new certificate', async () => (await httpsGet(`${gw.traffic}/a`, 'alice')).cn === 'hup-two', 10_000, 50);
  await until('every worker reloaded', () => gw.stderr().split('"event":"tls.reloaded"').length - 1 === workers);
  // New connections, whichever worker takes them, get the new certificate.
  for (let i = 0; i < 6; i++) t.is((await httpsGet(`${gw.traffic}/a`, 'alice')).cn, 'hup-two');
  t.is(await gw.stop(), 0);
});
