// Metrics of moves as the gateway sees them (in the gateway's registry, prefix cellgate_):
// requests cut when a freeze grace ended, and WebSockets, open and ended by the gateway.
// Reasons are fixed lists; counters start at 0 for every reason so that dashboards see them.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CutKind } from './cell-requests';
import { WS_CLOSE_REASONS, type WsCloseReason } from './websocket-registry';

const CUT_KINDS: readonly CutKind[] = ['awaiting_response', 'mid_response'];

export class MoveMetrics {
  private readonly cut: Counter<'reason'>;
  private readonly wsClosed: Counter<'reason'>;

  constructor(registry: Registry, source: { openWebSockets(): number; inflightWithUpstream(): number }) {
    const registers = [registry];
    this.cut = new Counter({
      name: 'cellgate_freeze_cut_requests_total',
      help: 'Requests of a freezing cell still with an upstream when the freeze grace ended, cut by the gateway; reason: whether the response had started.',
      labelNames: ['reason'], registers,
    });
    for (const reason of CUT_KINDS) this.cut.inc({ reason }, 0);
    this.wsClosed = new Counter({
      name: 'cellgate_websockets_closed_total',
      help: 'WebSockets the gateway ended: 1012 because their cell froze or moved (zone, epoch, or its zone down), 1001 at shutdown.',
      labelNames: ['reason'], registers,
    });
    for (const reason of WS_CLOSE_REASONS) this.wsClosed.inc({ reason }, 0);
    new Gauge({ name: 'cellgate_websockets_open', help: 'Proxied WebSockets open right now.', registers, collect() { this.set(source.openWebSockets()); } });
    new Gauge({ name: 'cellgate_upstream_requests_in_flight', help: 'Plain requests of cell routes with an upstream right now (what a freeze waits for).', registers, collect() { this.set(source.inflightWithUpstream()); } });
  }

  requestsCut(counts: Record<CutKind, number>): void {
    for (const reason of CUT_KINDS) if (counts[reason] > 0) this.cut.inc({ reason }, counts[reason]);
  }

  webSocketClosed(reason: WsCloseReason): void {
    this.wsClosed.inc({ reason });
  }
}
