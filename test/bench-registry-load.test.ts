// The building blocks of `npm run bench registry-load` (bench/registry-load-plan.ts): the 500
// endpoints it registers pass the registration checks and the table's URL checks (a refused
// one would make side B measure fewer), are distinct origins on 127.0.0.0/8 that the upstream
// listens on, and spread 15-16 per (zone, service); the table and the gateway config load.
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { versioned } from '../src/cells/table';
import { tableFromTopologyText } from '../src/cells/topology';
import { parseGatewayConfig } from '../src/router/config';
import { RegistryMerger } from '../src/router/registry-merge';
import { checkRegistration } from '../src/store/endpoint-record';
import {
  churnEndpoint, DEFAULT_REGISTERED, gatewayConfig, loadScript, loadTopology, registeredEndpoints, ROUTES, SERVICES, upstreamListens, ZONES,
} from '../bench/registry-load-plan';

const PORTS = [41001, 41002, 41003, 41004];

test('500 registered endpoints: distinct loopback origins, each one the upstream listens on, 15-16 per (zone, service)', (t) => {
  const planned = registeredEndpoints(DEFAULT_REGISTERED, PORTS);
  t.is(planned.length, 500);
  const origins = new Set(planned.map((e) => new URL(e.url).origin));
  t.is(origins.size, 500);
  const listens = new Set(upstreamListens(PORTS));
  for (const e of planned) {
    const u = new URL(e.url);
    t.regex(u.hostname, /^127\.\d+\.\d+\.\d+$/);
    t.true(listens.has(`${u.hostname}:${u.port}`), e.url);
  }
  const perPair = new Map<string, number>();
  for (const e of planned) perPair.set(`${e.zone}/${e.service}`, (perPair.get(`${e.zone}/${e.service}`) ?? 0) + 1);
  t.is(perPair.size, ZONES.length * SERVICES.length);
  t.true([...perPair.values()].every((n) => n === 15 || n === 16), JSON.stringify([...perPair]));
  t.throws(() => registeredEndpoints(501, PORTS));
});

test('the table loads, and merging the 500 registrations into it ignores none and routes 500', (t) => {
  const table = tableFromTopologyText(loadTopology(PORTS));
  t.is(table.zones.length, 8);
  const now = Date.now();
  const endpoints = registeredEndpoints(DEFAULT_REGISTERED, PORTS).map((e) => checkRegistration(e, now).endpoint);
  const merge = new RegistryMerger().merge(versioned(table, 1), { endpoints, refused: [], refusedCount: 0, overLimitCount: 0, version: 1 });
  t.deepEqual(merge.ignored, { unknown_zone: 0, url_refused: 0, too_many_services: 0 });
  let applied = 0;
  for (const services of merge.applied.values()) for (const n of services.values()) applied += n;
  t.is(applied, 500);
  // Static + registered, every (zone, service) list: one static endpoint then its 15-16 registered ones.
  const shA = merge.effective.table.zones.find((z) => z.name === 'sh-a')!;
  t.is(shA.upstreams.length, 1 + 16);
  t.is(shA.services!.orders!.upstreams.length, 1 + 16);
});

test('the change-latency endpoints are not among the 500 and the upstream listens on them', (t) => {
  const origins = new Set(registeredEndpoints(DEFAULT_REGISTERED, PORTS).map((e) => new URL(e.url).origin));
  const listens = new Set(upstreamListens(PORTS));
  for (let k = 0; k < 10; k++) {
    const u = new URL(churnEndpoint(k, PORTS).url);
    t.false(origins.has(u.origin));
    t.true(listens.has(`${u.hostname}:${u.port}`));
  }
});

test('the gateway config routes each prefix to its service; the wrk script sends every prefix', (t) => {
  const config = parseGatewayConfig(parseYaml(gatewayConfig()));
  t.deepEqual(config.routes.map((r) => [r.prefix, r.service]), ROUTES.map((r) => [r.prefix, r.service]));
  const script = loadScript(1000);
  for (const r of ROUTES) t.true(script.includes(`"${r.prefix}items"`));
  t.regex(script, /for i = 1, 1000 do/);
});
