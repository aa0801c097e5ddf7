// Readers of presence see the records presence relays write (`<prefix>/gateways-relayed/`)
// beside the gateways' own (`<prefix>/gateways/`), and keep the newer of two records of one
// gateway; a gateway whose relays do not answer registers its own record instead.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { createEtcdStore } from '../src/store/etcd-store';
import { startPresenceRelay } from '../src/relay';
import { DIRECT, RELAYED, RelayedPresence, type RelayedState } from '../src/store/relayed-presence';
import type { PresenceRecord, PresenceSnapshot, TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { freePort } from './helpers/ports';
import { until } from './helpers/wait';

let etcd: EtcdHandle;
let raw: Etcd3;
test.before(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
});
test.after.always(async () => {
  raw?.close();
  await etcd?.stop();
});

function open(t: ExecutionContext, prefix: string): TableStore {
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix, callTimeoutMs: 5_000 });
  t.teardown(() => store.close());
  return store;
}

function record(id: string, appliedVersion: number, updatedAt = new Date().toISOString(), extra: Partial<PresenceRecord> = {}): PresenceRecord {
  return { id, zone: 'sh-a', appliedVersion, checksum: `c${appliedVersion}`, inFlight: 0, startedAt: updatedAt, updatedAt, pid: 1, host: 'test', ...extra };
}

const prefix = () => `/relayed-${randomBytes(4).toString('hex')}`;
const summary = (s: PresenceSnapshot) => s.records.map((r) => `${r.id}@${r.appliedVersion}${r.relay ? `~${r.relay}` : ''}`);

test('a snapshot holds relayed and direct records; of two records of one gateway the higher version, then the later update, counts', async (t) => {
  const p = prefix();
  const store = open(t, p);
  await raw.put(`${p}/gateways/gw-a`).value(JSON.stringify(record('gw-a', 5)));
  await raw.put(`${p}/gateways-relayed/gw-a`).value(JSON.stringify(record('gw-a', 4, undefined, { relay: 'r1' })));
  await raw.put(`${p}/gateways-relayed/gw-b`).value(JSON.stringify(record('gw-b', 7, undefined, { relay: 'r1' })));
  await raw.put(`${p}/gateways/gw-c`).value(JSON.stringify(record('gw-c', 3, '2026-01-01T00:00:00.000Z')));
  await raw.put(`${p}/gateways-relayed/gw-c`).value(JSON.stringify(record('gw-c', 3, '2026-01-01T00:00:01.000Z', { relay: 'r2' })));
  // Under the shared prefix but neither kind of record: not a gateway.
  await raw.put(`${p}/gatewaysX/gw-d`).value(JSON.stringify(record('gw-d', 1)));
  t.deepEqual(summary(await store.presence.snapshot()), ['gw-a@5', 'gw-b@7~r1', 'gw-c@3~r2']);
});

test('the presence watch delivers relayed records as they are written and deleted', async (t) => {
  const p = prefix();
  const store = open(t, p);
  let last: PresenceSnapshot | null = null;
  const w = store.presence.watch({ onSnapshot: (s) => { last = s; } });
  t.teardown(() => w.close());
  await until('first snapshot', () => last !== null, 10_000);
  await raw.put(`${p}/gateways-relayed/gw-a`).value(JSON.stringify(record('gw-a', 2, undefined, { relay: 'r1' })));
  await until('relayed record seen', () => last !== null && summary(last).join() === 'gw-a@2~r1', 10_000);
  await raw.put(`${p}/gateways/gw-a`).value(JSON.stringify(record('gw-a', 3)));
  await until('the newer direct record wins', () => last !== null && summary(last).join() === 'gw-a@3', 10_000);
  await raw.delete().key(`${p}/gateways/gw-a`);
  await until('the relayed record again', () => last !== null && summary(last).join() === 'gw-a@2~r1', 10_000);
  await raw.put(`${p}/gateways-relayed/gw-a`).value('{not json');
  await until('a malformed relayed record is named', () => last !== null && last.records.length === 0 && last.malformed.map((m) => m.id).join() === 'gw-a', 10_000);
  t.is(last!.malformed[0]!.problem, 'not JSON');
});

test('relays that do not answer: the gateway registers its own record at once, and withdraws it on close', async (t) => {
  const p = prefix();
  const store = open(t, p);
  const states: RelayedState[] = [];
  const deadPort = await freePort();
  const relayed = new RelayedPresence(store.presence, { relays: [`http://127.0.0.1:${deadPort}`], requestTimeoutMs: 500, onState: (_id, s) => states.push(s) });
  t.teardown(() => relayed.close());
  const reg = await relayed.register(record('gw-a', 1), 3);
  t.teardown(() => reg.close());
  t.deepEqual(states, [DIRECT]);
  const direct = await raw.get(`${p}/gateways/gw-a`).string();
  t.is(JSON.parse(direct ?? '{}').appliedVersion, 1);
  await reg.update(record('gw-a', 2));
  t.is(JSON.parse((await raw.get(`${p}/gateways/gw-a`).string()) ?? '{}').appliedVersion, 2);
  await reg.close();
  t.is(await raw.get(`${p}/gateways/gw-a`).string(), null);
});

test('through a real relay: relayed, then the relay stops and the gateway falls back to its own record, then back on the relay and the own record withdrawn', async (t) => {
  const p = prefix();
  const store = open(t, p);
  const port = await freePort();
  const relayOpts = { etcd: { endpoints: etcd.endpoints, prefix: p }, id: 'r1', host: '127.0.0.1', port };
  let relay = await startPresenceRelay(relayOpts);
  t.teardown(() => relay.close());
  const states: RelayedState[] = [];
  const relayed = new RelayedPresence(store.presence, { relays: [relay.url], requestTimeoutMs: 1_000, onState: (_id, s) => states.push(s) });
  t.teardown(() => relayed.close());
  const own = async () => (await raw.get(`${p}/gateways/gw-a`).string()) ?? null;
  const viaRelay = async () => (await raw.get(`${p}/gateways-relayed/gw-a`).string()) ?? null;

  // TTL 3 s: the registration beats (or retries the relay) every second.
  const reg = await relayed.register(record('gw-a', 1), 3);
  t.teardown(() => reg.close());
  t.deepEqual(states, [RELAYED]);
  t.like(JSON.parse((await viaRelay()) ?? '{}'), { appliedVersion: 1, relay: 'r1' }, 'committed before register() resolved');
  t.is(await own(), null);

  await relay.close(); // revokes its lease: the relayed record is gone
  t.is(await viaRelay(), null);
  await reg.update(record('gw-a', 2));
  t.deepEqual(states, [RELAYED, DIRECT]);
  t.is(JSON.parse((await own()) ?? '{}').appliedVersion, 2, 'the update landed in the gateway\'s own record');
  t.deepEqual(summary(await store.presence.snapshot()), ['gw-a@2']);

  relay = await startPresenceRelay(relayOpts);
  await until('back on the relay', () => states.length === 3, 10_000);
  t.deepEqual(states, [RELAYED, DIRECT, RELAYED]);
  t.like(JSON.parse((await viaRelay()) ?? '{}'), { appliedVersion: 2, relay: 'r1' });
  await until('own record withdrawn', async () => (await own()) === null, 10_000);
  t.deepEqual(summary(await store.presence.snapshot()), ['gw-a@2~r1']);

  await reg.close();
  t.is(await viaRelay(), null, 'close() deletes the relayed record at once');
});
