// Bounded waiting for upstream connections, after Envoy's cluster circuit breakers: an
// endpoint takes `connectionsPerEndpoint` requests at once (ZonePool.slotsPerEndpoint);
// when every endpoint of a zone's service is full, a request waits in the queue of that
// zone and service (Envoy's per-cluster pending requests), which holds at most
// `maxPendingPerZone` (one more is refused at once: 503 ZONE_OVERLOADED) and where every
// request keeps its deadline (counted from its arrival: 504 UPSTREAM_TIMEOUT when it passes
// while waiting). Nothing queues inside undici, where nothing would bound or time it; one
// zone's or service's queue never delays another's requests. The queue is keyed by zone and
// service, not by pool object, so a new table's pool of the same service shares its bound.
//
// Waiting requests are bounded in bytes too: their bodies are not read while they wait (the
// client's socket buffers hold what it sent), so the queue holds no more than its count.
//
// The queue is FIFO per zone and service. A freed slot goes at once (synchronously, in release()) to the
// head of a queue that can use it, so a newly arriving request finds room only when nobody
// is waiting.
import type { Clock, TimerHandle } from '../clock';
import type { Endpoint, ZonePool } from './endpoints';

/** A request that needs a slot on an endpoint of `pool`. */
export interface SlotRequest {
  readonly pool: ZonePool;
  /** The endpoint routing picked (pick() prefers one with room). */
  readonly endpoint: Endpoint;
  /** When it must have been answered (clock ms). */
  readonly deadlineMs: number;
  /** It got a slot on `endpoint` (already counted in endpoint.active): send it there. */
  start(endpoint: Endpoint): void;
  /** Its deadline passed while it waited. */
  expire(): void;
  /** Every endpoint of its zone's service became unavailable while it waited. */
  unavailable(): void;
}

/** What enter() did: started at once, waiting (cancel() when its client goes away), or refused. */
export type Admitted = { readonly kind: 'started' } | { readonly kind: 'waiting'; cancel(): void } | { readonly kind: 'refused' };

interface Waiter {
  readonly request: SlotRequest;
  timer: TimerHandle | null;
}

/** Requests waiting for one service of one zone. */
export interface PendingCount {
  readonly zone: string;
  readonly service: string;
  readonly n: number;
}

const STARTED: Admitted = { kind: 'started' };
const REFUSED: Admitted = { kind: 'refused' };

export class Admission {
  private readonly maxPendingPerZone: number;
  private readonly clock: Clock;
  /** Per pool key (zone and service), in arrival order; only keys with waiters have an entry. */
  private readonly queues = new Map<string, Set<Waiter>>();

  constructor(options: { readonly maxPendingPerZone: number; readonly clock: Clock }) {
    this.maxPendingPerZone = options.maxPendingPerZone;
    this.clock = options.clock;
  }

  /**
   * The common case without building a SlotRequest: nobody of the pool waits and `endpoint`
   * has room; it then holds a slot there (true). False: nothing changed, use enter().
   */
  tryStart(pool: ZonePool, endpoint: Endpoint): boolean {
    if (this.queues.size > 0 && this.queues.has(pool.key)) return false;
    if (!pool.hasRoom(endpoint)) return false;
    endpoint.active += 1;
    return true;
  }

  enter(request: SlotRequest): Admitted {
    const key = request.pool.key;
    if (!this.queues.has(key) && request.pool.hasRoom(request.endpoint)) {
      request.endpoint.active += 1;
      request.start(request.endpoint);
      return STARTED;
    }
    let queue = this.queues.get(key);
    if ((queue?.size ?? 0) >= this.maxPendingPerZone) return REFUSED;
    if (!queue) this.queues.set(key, (queue = new Set()));
    const waiter: Waiter = { request, timer: null };
    queue.add(waiter);
    waiter.timer = this.clock.setTimer(() => {
      waiter.timer = null;
      if (this.remove(key, waiter)) request.expire();
    }, request.deadlineMs - this.clock.now());
    return {
      kind: 'waiting',
      cancel: () => {
        this.remove(key, waiter);
      },
    };
  }

  /** A request is done with `endpoint`: its slot goes to a waiting request, if one can use it. */
  release(endpoint: Endpoint): void {
    endpoint.active -= 1;
    if (this.queues.size > 0) this.pump();
  }

  /** Requests waiting right now, by zone and service (for metrics). */
  pending(): PendingCount[] {
    const out: PendingCount[] = [];
    for (const q of this.queues.values()) {
      const first = q.values().next().value as Waiter;
      out.push({ zone: first.request.pool.zone, service: first.request.pool.service, n: q.size });
    }
    return out;
  }

  private pump(): void {
    const now = this.clock.now();
    for (const [key, queue] of [...this.queues]) {
      for (const waiter of queue) {
        const { request } = waiter;
        const e = request.pool.pickWithRoom(now);
        if (e) {
          this.remove(key, waiter);
          e.active += 1;
          request.start(e);
        } else if (request.pool.pick(now) === null) {
          this.remove(key, waiter);
          request.unavailable();
        } else {
          break;
        }
      }
    }
  }

  /** Takes `waiter` out of its queue; false when it was not there any more. */
  private remove(key: string, waiter: Waiter): boolean {
    const queue = this.queues.get(key);
    if (!queue || !queue.delete(waiter)) return false;
    if (waiter.timer) this.clock.clearTimer(waiter.timer);
    waiter.timer = null;
    if (queue.size === 0) this.queues.delete(key);
    return true;
  }
}
