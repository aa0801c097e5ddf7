// One simulated gateway for the registry benchmark: what createGateway wires for the table
// and the endpoint registry (table watch → routing state; registry watch → RegistryFollower
// → merge → routing view and pools), without HTTP. Used in bench/registry-child.ts.
import { performance } from 'node:perf_hooks';
import { systemClock } from '../src/clock';
import { parseGatewayConfig } from '../src/router/config';
import { EndpointHealth } from '../src/router/endpoints';
import { RegistryFollower } from '../src/router/registry-follower';
import { RoutingStateHolder } from '../src/router/routing-state';
import type { RegistrySnapshot, TableStore, TableWatch } from '../src/store/types';

const APPLY_TIMEOUT_MS = 30_000;

/** What a change waits for: the registry holding `count` endpoints, or holding / not holding `id`. */
export type Expectation = { readonly count: number } | { readonly has: string } | { readonly hasNot: string };

export function satisfies(s: RegistrySnapshot, e: Expectation): boolean {
  if ('count' in e) return s.endpoints.length === e.count;
  if ('has' in e) return s.endpoints.some((x) => x.id === e.has);
  return !s.endpoints.some((x) => x.id === e.hasNot);
}

/** Epoch ms with sub-ms precision, comparable across processes. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export class SimGateway {
  readonly routing = new RoutingStateHolder(new EndpointHealth(parseGatewayConfig({}).upstream, () => Date.now()), systemClock);
  /** CPU of each apply (merge, routing view, pools), ms. */
  readonly applyMs: number[] = [];
  private readonly follower: RegistryFollower;
  private readonly tableWatch: TableWatch;
  private waiter: { e: Expectation; resolve: (atMs: number) => void } | null = null;
  private last: RegistrySnapshot | null = null;

  constructor(readonly store: TableStore) {
    this.tableWatch = store.watch({ onTable: (vt) => this.routing.swap(vt, 'store', Date.now()) });
    this.follower = new RegistryFollower(store.registry, {
      apply: (s) => {
        const t = performance.now();
        const merge = this.routing.registryChanged(s);
        this.applyMs.push(performance.now() - t);
        return merge;
      },
      applied: (s) => {
        this.last = s;
        const w = this.waiter;
        if (w && satisfies(s, w.e)) {
          this.waiter = null;
          w.resolve(epochMs());
        }
      },
      log: () => undefined,
    });
    this.follower.start();
  }

  /** Resolves with the time (epochMs) the first snapshot meeting `e` was applied. */
  until(e: Expectation): Promise<number> {
    if (this.last && satisfies(this.last, e)) return Promise.resolve(epochMs());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`a gateway did not apply ${JSON.stringify(e)} within ${APPLY_TIMEOUT_MS} ms`)), APPLY_TIMEOUT_MS);
      this.waiter = { e, resolve: (at) => { clearTimeout(timer); resolve(at); } };
    });
  }

  async close(): Promise<void> {
    await this.follower.close();
    await this.tableWatch.close();
    await this.store.close();
  }
}
