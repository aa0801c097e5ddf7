// A process of simulated gateways for `npm run bench registry` (bench/registry.ts): started
// with CELLGATE_REGISTRY_CHILD = {endpoints, prefix, gateways, version}; answers the parent's
// `expect` messages with when the last of its gateways applied the expected registry.
import { createEtcdStore } from '../src/store/etcd-store';
import { SimGateway, type Expectation } from './registry-sim';

interface Start { readonly endpoints: string[]; readonly prefix: string; readonly gateways: number; readonly version: number }
export type ToChild = { readonly type: 'expect'; readonly e: Expectation } | { readonly type: 'stop' };
export type FromChild = { readonly type: 'ready' } | { readonly type: 'armed' } | { readonly type: 'applied'; readonly atMs: number; readonly applyMs: number[] } | { readonly type: 'error'; readonly message: string };

const start = JSON.parse(process.env.CELLGATE_REGISTRY_CHILD ?? '{}') as Start;
const send = (m: FromChild) => process.send?.(m);

async function main(): Promise<void> {
  const gateways = Array.from({ length: start.gateways }, () => new SimGateway(createEtcdStore({ endpoints: start.endpoints, prefix: start.prefix })));
  await Promise.all(gateways.map((g) => g.routing.waitForVersion(start.version, 60_000, 'bench')));
  process.on('message', (m: ToChild) => {
    if (m.type === 'stop') {
      void Promise.all(gateways.map((g) => g.close().catch(() => undefined))).then(() => process.exit(0));
      return;
    }
    const before = gateways.map((g) => g.applyMs.length);
    Promise.all(gateways.map((g) => g.until(m.e))).then(
      (times) => send({ type: 'applied', atMs: Math.max(...times), applyMs: gateways.flatMap((g, i) => g.applyMs.slice(before[i])) }),
      (err: Error) => send({ type: 'error', message: err.message }),
    );
    // The waiters are set: the parent may write now.
    send({ type: 'armed' });
  });
  send({ type: 'ready' });
}

process.on('disconnect', () => process.exit(0));
main().catch((err: Error) => {
  send({ type: 'error', message: err.message });
  process.exit(1);
});
