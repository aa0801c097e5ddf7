// Bounded waiting for upstream connections, after Envoy's cluster circuit breakers: an
// endpoint takes `connectionsPerEndpoint` requests at once (ZonePool.slotsPerEndpoint);
// when every endpoint of a zone is full, a request waits in that zone's queue, which holds
// at most `maxPendingPerZone` (one more is refused at once: 503 ZONE_OVERLOADED) and where
// every request keeps its deadline (counted from its arrival: 504 UPSTREAM_TIMEOUT when it
// passes while waiting). Nothing queues inside undici, where nothing would bound or time it;
// one zone's queue never delays another zone's requests.
//
// Waiting requests are bounded in bytes too: their bodies are not read while they wait (the
// client's socket buffers hold what it sent), so the queue holds no more than its count.
//
// The queue is FIFO per zone. A freed slot goes at once (synchronously, in release()) to the
// head of a queue that can use it, so a newly arriving request finds room only when nobody
// is waiting.
import type { Clock, TimerHandle } from './clock';
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
  /** Every endpoint of its zone became unavailable while it waited. */
  unavailable(): void;
}

/** What enter() did: started at once, waiting (cancel() when its client goes away), or refused. */
export type Admitted = { readonly kind: 'started' } | { readonly kind: 'waiting'; cancel(): void } | { readonly kind: 'refused' };

interface Waiter {
  readonly request: SlotRequest;
  timer: TimerHandle | null;
}

const STARTED: Admitted = { kind: 'started' };
const REFUSED: Admitted = { kind: 'refused' };

export class Admission {
  private readonly maxPendingPerZone: number;
  private readonly clock: Clock;
  /** Per zone name, in arrival order; only zones with waiters have an entry. */
  private readonly queues = new Map<string, Set<Waiter>>();

  constructor(options: { readonly maxPendingPerZone: number; readonly clock: Clock }) {
    this.maxPendingPerZone = options.maxPendingPerZone;
    this.clock = options.clock;
  }

  /**
   * The common case without building a SlotRequest: nobody of the zone waits and `endpoint`
   * has room; it then holds a slot there (true). False: nothing changed, use enter().
   */
  tryStart(pool: ZonePool, endpoint: Endpoint): boolean {
    if (this.queues.size > 0 && this.queues.has(pool.zone.name)) return false;
    if (!pool.hasRoom(endpoint)) return false;
    endpoint.active += 1;
    return true;
  }

  enter(request: SlotRequest): Admitted {
    const zone = request.pool.zone.name;
    if (!this.queues.has(zone) && request.pool.hasRoom(request.endpoint)) {
      request.endpoint.active += 1;
      request.start(request.endpoint);
      return STARTED;
    }
    let queue = this.queues.get(zone);
    if ((queue?.size ?? 0) >= this.maxPendingPerZone) return REFUSED;
    if (!queue) this.queues.set(zone, (queue = new Set()));
    const waiter: Waiter = { request, timer: null };
    queue.add(waiter);
    waiter.timer = this.clock.setTimer(() => {
      waiter.timer = null;
      if (this.remove(zone, waiter)) request.expire();
    }, request.deadlineMs - this.clock.now());
    return {
      kind: 'waiting',
      cancel: () => {
        this.remove(zone, waiter);
      },
    };
  }

  /** A request is done with `endpoint`: its slot goes to a waiting request, if one can use it. */
  release(endpoint: Endpoint): void {
    endpoint.active -= 1;
    if (this.queues.size > 0) this.pump();
  }

  /** Requests waiting right now, by zone (for metrics). */
  pendingByZone(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [zone, q] of this.queues) out.set(zone, q.size);
    return out;
  }

  private pump(): void {
    const now = this.clock.now();
    for (const [zone, queue] of [...this.queues]) {
      for (const waiter of queue) {
        const { request } = waiter;
        const e = request.pool.pickWithRoom(now);
        if (e) {
          this.remove(zone, waiter);
          e.active += 1;
          request.start(e);
        } else if (request.pool.pick(now) === null) {
          this.remove(zone, waiter);
          request.unavailable();
        } else {
          break;
        }
      }
    }
  }

  /** Takes `waiter` out of its queue; false when it was not there any more. */
  private remove(zone: string, waiter: Waiter): boolean {
    const queue = this.queues.get(zone);
    if (!queue || !queue.delete(waiter)) return false;
    if (waiter.timer) this.clock.clearTimer(waiter.timer);
    waiter.timer = null;
    if (queue.size === 0) this.queues.delete(zone);
    return true;
  }
}
