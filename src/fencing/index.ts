// Epoch fencing for the services behind the gateway. Every proxied request carries the
// cell, zone and epoch the gateway routed it with (x-cell-id, x-cell-epoch); a service
// that follows the same table can refuse a request routed with a stale view — e.g. one a
// gateway sent to the old zone just after a cell moved — with 421 NOT_CELL_OWNER.
//
// A zone owns a cell at an epoch when the table it follows says the cell is served by that
// zone with exactly that epoch, or when the request names this zone at an epoch newer than
// the table it follows knows (its copy of the table lags the gateway's). Requests without cell headers (city traffic, health checks)
// are not fenced.
//
// Published as `cellgate/fencing` (package.json "exports"): it depends on the pure model,
// the store interface and the error table only, not on the gateway.
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply } from 'fastify';
import { RoutingView } from '../cells/lookup';
import { GLOBAL_CELL, type Cell } from '../cells/types';
import { decodeUserId } from '../cells/user-id';
import { type ErrorName, errorSpec } from '../errors';
import type { TableStore, TableWatch } from '../store/types';

export type Ownership =
  /** The request names no cell: nothing to fence. */
  | { readonly kind: 'unfenced' }
  | { readonly kind: 'owned'; readonly cell: string; readonly epoch: number }
  | { readonly kind: 'notOwned'; readonly cell: string; readonly epoch: number | null; readonly why: string }
  /** No table yet: ownership cannot be decided. */
  | { readonly kind: 'unknown'; readonly cell: string };

const UNFENCED: Ownership = Object.freeze({ kind: 'unfenced' });

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
}

/**
 * The user id the gateway routed by, as the gateway decodes it (UTF-8, no control
 * characters), from the header the gateway passes on (default x-user-id); null when absent
 * or unusable. The gateway refuses a request whose repeated header carries two different
 * ids; an identical repeat it passes on arrives joined by Node as "id, id", read as "id".
 */
export function requestUserId(headers: IncomingHttpHeaders, name = 'x-user-id'): string | null {
  const raw = header(headers, name);
  if (raw === undefined || raw === '') return null;
  const id = decodeUserId(undoIdenticalJoin(raw), 'wire');
  return typeof id === 'string' ? id : null;
}

function undoIdenticalJoin(v: string): string {
  const comma = v.indexOf(', ');
  if (comma < 0) return v;
  const first = v.slice(0, comma);
  return v.split(', ').every((part) => part === first) ? first : v;
}

/** The contract's JSON error with its status (and Retry-After on 503s). */
export function fencingErrorBody(name: ErrorName): string {
  return JSON.stringify({ error: name, message: errorSpec(name).message });
}

function sendError(reply: FastifyReply, name: ErrorName): FastifyReply {
  const status = errorSpec(name).status;
  reply.code(status).header('content-type', 'application/json; charset=utf-8');
  if (status === 503) reply.header('retry-after', '1');
  return reply.send(fencingErrorBody(name));
}

export function checkCellOwnership(view: RoutingView | null, zoneName: string, headers: IncomingHttpHeaders): Ownership {
  const cellName = header(headers, 'x-cell-id');
  if (cellName === undefined || cellName === '') return UNFENCED;
  if (!view) return { kind: 'unknown', cell: cellName };
  const rawEpoch = header(headers, 'x-cell-epoch');
  const epoch = rawEpoch !== undefined && /^\d{1,15}$/.test(rawEpoch) ? Number(rawEpoch) : null;
  const cell: Cell | undefined = cellName === GLOBAL_CELL ? view.table.global : view.cell(cellName);
  if (!cell) return { kind: 'notOwned', cell: cellName, epoch, why: `no cell named ${cellName} in table ${view.version}` };
  // Epochs only grow: a request routed at a newer epoch, to this zone, comes from a gateway
  // that has seen a later table than ours. Ours lags (it arrives a few ms later); the route is
  // not stale, and refusing it would fail every request of a cell just moved here.
  if (epoch !== null && epoch > cell.epoch && header(headers, 'x-cell-zone') === zoneName) return { kind: 'owned', cell: cellName, epoch };
  if (cell.zone !== zoneName) return { kind: 'notOwned', cell: cellName, epoch, why: `cell ${cellName} is served by ${cell.zone} at epoch ${cell.epoch}` };
  if (epoch !== cell.epoch) return { kind: 'notOwned', cell: cellName, epoch, why: `cell ${cellName} is at epoch ${cell.epoch}, the request was routed at ${rawEpoch ?? 'no epoch'}` };
  return { kind: 'owned', cell: cellName, epoch };
}

/** Follows a store's table for fencing outside fastify. */
export class OwnershipFollower {
  private current: RoutingView | null = null;
  private readonly watch: TableWatch;

  constructor(store: TableStore) {
    this.watch = store.watch({
      onTable: (vt) => {
        try {
          this.current = new RoutingView(vt);
        } catch {
          // keep the last good view: a table that cannot be used never breaks fencing
        }
      },
    });
  }

  get view(): RoutingView | null {
    return this.current;
  }

  check(zoneName: string, headers: IncomingHttpHeaders): Ownership {
    return checkCellOwnership(this.current, zoneName, headers);
  }

  close(): Promise<void> {
    return this.watch.close();
  }
}

export interface FencingPluginOptions {
  readonly store: TableStore;
  /** The zone this service runs in. */
  readonly zone: string;
  /** Answer 421 to requests this zone does not own (default true); false only records the verdict. */
  readonly enforce?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The fencing verdict for this request (set by the cellgate fencing plugin). */
    cellOwnership: Ownership | null;
  }
  interface FastifyInstance {
    cellgateFencing: OwnershipFollower;
  }
}

/**
 * Fastify plugin: follows `store` and answers 421 NOT_CELL_OWNER to requests whose cell this
 * zone does not own at that epoch (503 NO_ROUTING_TABLE before the first table arrives).
 * Not encapsulated: it fences every route of the instance it is registered on.
 */
export const fencingPlugin: FastifyPluginCallback<FencingPluginOptions> = (app: FastifyInstance, opts, done) => {
  const follower = new OwnershipFollower(opts.store);
  const enforce = opts.enforce ?? true;
  app.decorate('cellgateFencing', follower);
  app.decorateRequest('cellOwnership', null);
  app.addHook('onRequest', (request, reply, next) => {
    const verdict = follower.check(opts.zone, request.headers);
    request.cellOwnership = verdict;
    if (enforce && verdict.kind === 'notOwned') return void sendError(reply, 'NOT_CELL_OWNER');
    if (enforce && verdict.kind === 'unknown') return void sendError(reply, 'NO_ROUTING_TABLE');
    next();
  });
  app.addHook('onClose', async () => {
    await follower.close();
  });
  done();
};
// What fastify-plugin does: register into the parent's scope instead of a child one.
(fencingPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
