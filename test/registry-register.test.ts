// registerEndpoint() (`cellgate/registry`) over the memory store: registered while the
// check passes, withdrawn while it fails and on close(); bad options are USAGE errors.
import test from 'ava';
import { isCellgateError } from '../src/errors';
import { registerEndpoint } from '../src/registry';
import { MemoryStore } from './helpers/memory-store';
import { startUpstreams, stopAll } from './helpers/upstreams';

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('registerEndpoint: registered while GET url+checkPath passes, withdrawn while it fails, back when it passes, gone on close', async (t) => {
  const [svc] = await startUpstreams('svc');
  t.teardown(() => stopAll([svc!]));
  let healthy = true;
  svc!.behave = (req, res) => {
    if (req.url !== '/healthz' || healthy) return false;
    res.writeHead(500);
    res.end();
    return true;
  };
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const events: string[] = [];
  const ids = async () => (await store.registry.snapshot()).endpoints.map((e) => e.id);
  const h = await registerEndpoint({ store, zone: 'sh-a', service: 'orders', url: svc!.url, id: 'svc-1', checkPath: '/healthz', checkIntervalMs: 100, log: (e) => events.push(e) });
  t.teardown(() => h.close());
  t.is(h.state, 'registered');
  t.deepEqual(await ids(), ['svc-1']);
  healthy = false;
  await until('withdrawn', async () => (await ids()).length === 0);
  t.is(h.state, 'withdrawn');
  healthy = true;
  await until('registered again', async () => (await ids()).length === 1);
  await h.close();
  t.deepEqual(await ids(), []);
  t.is(h.state, 'closed');
  t.true(events.includes('register.check_failed') && events.includes('register.withdrawn'));
});

test('registerEndpoint: without a check it registers at once or throws; bad options are USAGE', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const h = await registerEndpoint({ store, zone: 'sh-a', service: 'default', url: 'http://127.0.0.1:9' });
  t.regex(h.id, /-\d+$/, 'hostname-pid by default');
  t.is((await store.registry.snapshot()).endpoints.length, 1);
  await h.close();
  store.setReachable(false);
  const down = await t.throwsAsync(registerEndpoint({ store, zone: 'sh-a', service: 'default', url: 'http://127.0.0.1:9' }));
  t.true(isCellgateError(down, 'STORE_UNAVAILABLE'));
  store.setReachable(true);
  for (const bad of [{ url: 'nope' }, { checkPath: 'healthz' }, { checkIntervalMs: 5 }, { weight: 500 }]) {
    const err = await t.throwsAsync(registerEndpoint({ store, zone: 'sh-a', service: 'default', url: 'http://127.0.0.1:9', ...bad }));
    t.true(isCellgateError(err, 'USAGE'), JSON.stringify(bad));
  }
  t.deepEqual((await store.registry.snapshot()).endpoints, []);
});

test('registerEndpoint: close() during a failing check stops the loop for good', async (t) => {
  const [svc] = await startUpstreams('svc');
  t.teardown(() => stopAll([svc!]));
  let checks = 0;
  let release: (() => void) | null = null;
  svc!.behave = (req, res) => {
    if (req.url !== '/healthz') return false;
    checks += 1;
    if (checks === 1) return false; // the first check passes: registered
    // The next one hangs until the test lets it fail, after close() began.
    return new Promise<boolean>((resolve) => {
      release = () => {
        res.writeHead(500);
        res.end();
        resolve(true);
      };
    });
  };
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const h = await registerEndpoint({ store, zone: 'sh-a', service: 'orders', url: svc!.url, id: 'svc-1', checkPath: '/healthz', checkIntervalMs: 100 });
  await until('the second check in flight', async () => release !== null);
  const closing = h.close();
  release!();
  await closing;
  t.is(h.state, 'closed');
  const after = checks;
  // An absence is observed over a window: five check intervals, in which a live loop would check again.
  await new Promise((r) => setTimeout(r, 500));
  t.is(checks, after, 'no check after close()');
  t.deepEqual((await store.registry.snapshot()).endpoints, []);
});

test('registerEndpoint: a checkPath that names another host (//host/…, /\\host/…) is USAGE, never a check of that host', async (t) => {
  const [svc, decoy] = await startUpstreams('svc', 'decoy');
  t.teardown(() => stopAll([svc!, decoy!]));
  // The instance itself is unhealthy; the decoy answers 200 to everything.
  svc!.probeBehave = svc!.behave = (_req, res) => {
    res.writeHead(500);
    res.end();
    return true;
  };
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const host = new URL(decoy!.url).host;
  for (const checkPath of [`//${host}/healthz`, `/\\${host}/healthz`, `/\t/${host}/healthz`]) {
    const err = await t.throwsAsync(registerEndpoint({ store, zone: 'sh-a', service: 'default', url: svc!.url, id: 'svc-1', checkPath, checkIntervalMs: 100 }));
    t.true(isCellgateError(err, 'USAGE'), checkPath);
    t.regex((err as Error).message, /checkPath/);
  }
  t.deepEqual((await store.registry.snapshot()).endpoints, [], 'the unhealthy instance is not registered on the decoy\'s health');
});

test('registerEndpoint: an id held by another instance is ENDPOINT_TAKEN, with a check too; taken later (lost lease) it stops for good and says so', async (t) => {
  const [svc] = await startUpstreams('svc');
  t.teardown(() => stopAll([svc!]));
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const holder = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'svc-1', url: 'http://127.0.0.1:9001' });
  for (const checkPath of [undefined, '/healthz']) {
    // The check passes; the registration is refused all the same, and not retried at every check.
    const err = await t.throwsAsync(registerEndpoint({ store, zone: 'sh-a', service: 'orders', url: svc!.url, id: 'svc-1', checkPath, checkIntervalMs: 100 }));
    t.true(isCellgateError(err, 'ENDPOINT_TAKEN'), String(err));
  }
  await holder.close();

  const takenBy: Error[] = [];
  const events: string[] = [];
  const h = await registerEndpoint({ store, zone: 'sh-a', service: 'orders', url: 'http://127.0.0.1:9001', id: 'svc-1', log: (e) => events.push(e), onTaken: (err) => takenBy.push(err) });
  t.teardown(() => h.close());
  const lose = store.registry.leaseOf('sh-a/orders/svc-1');
  store.registry.putRaw('sh-a/orders/svc-1', JSON.stringify({ url: 'http://127.0.0.1:9002', weight: 1, registeredAt: new Date().toISOString(), instance: 'other' }));
  await lose();
  await until('taken reported', async () => takenBy.length === 1);
  t.is(h.state, 'taken');
  t.true(isCellgateError(takenBy[0], 'ENDPOINT_TAKEN'));
  t.true(events.includes('register.taken'));
  await h.close();
  t.deepEqual((await store.registry.snapshot()).endpoints.map((e) => e.url), ['http://127.0.0.1:9002'], 'the other instance keeps it');
});
