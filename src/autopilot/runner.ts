// One autopilot replica: campaigns for leadership (etcd Election); while leader it follows
// the table, the live gateways' presence and the pause flag (all etcd watches), evaluates the
// engine on every change and on a short tick (the down-after timer), logs every verdict that
// changed, and carries out an action with the same planner and executor as `cellctl zone
// down|up` (actor `autopilot`, the evidence as reason). A standby does nothing but wait; a
// leader that loses its lease stops acting at once (the campaign's error) and campaigns again.
import type { Logger } from 'pino';
import type { Campaign, Watcher } from 'etcd3';
import { Counter, Gauge, Registry } from 'prom-client';
import type { RoutingTable } from '../cells/types';
import { FailoverExecutor } from '../failover/executor';
import { planZoneDown, planZoneUp } from '../failover/planner';
import type { PresenceRecord, TableStore, TableWatch, PresenceWatch } from '../store/types';
import { AutopilotControl, etcdOf, type PauseState } from './control';
import { AutopilotEngine, type AutopilotSettings, type Decision } from './engine';
import { AUTOPILOT_ACTOR, autopilotPast, type AutopilotPast } from './history';

export interface RunnerOptions {
  readonly store: TableStore;
  readonly id: string;
  readonly settings: Partial<AutopilotSettings>;
  readonly log: Logger;
  /** The election lease: how long a dead leader blocks its standby (default 5 s). */
  readonly leaseTtlSeconds?: number;
  /** How often the timers are looked at between events (default 250 ms). */
  readonly tickMs?: number;
}

export class AutopilotRunner {
  readonly registry = new Registry();
  private readonly o: RunnerOptions;
  private readonly engine: AutopilotEngine;
  private readonly control: AutopilotControl;
  private readonly metrics;
  private table: { version: number; table: RoutingTable } | null = null;
  private past: AutopilotPast = { downByAutopilot: new Set(), lastActionMs: null };
  private records: readonly PresenceRecord[] = [];
  private tableConnected = false;
  private presenceOk = false;
  private pause: PauseState = { paused: true, actor: null, at: null, reason: 'not read yet' };
  private pauseKnown = false;
  private leader = false;
  private executing = false;
  private lastDecisions: readonly Decision[] = [];
  private campaign: Campaign | null = null;
  private tableWatch: TableWatch | null = null;
  private presenceWatch: PresenceWatch | null = null;
  private pauseWatch: Watcher | null = null;
  private tick: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: RunnerOptions) {
    this.o = options;
    this.engine = new AutopilotEngine(options.settings);
    this.control = new AutopilotControl(etcdOf(options.store));
    const registers = [this.registry];
    this.metrics = {
      leader: new Gauge({ name: 'cellgate_autopilot_leader', help: '1 while this replica is the autopilot leader.', registers }),
      decisions: new Counter({ name: 'cellgate_autopilot_decisions_total', help: 'Autopilot verdicts (each change of verdict per zone), by action and result.', labelNames: ['action', 'result'], registers }),
      witnesses: new Gauge({ name: 'cellgate_autopilot_zone_witnesses', help: 'Gateways that see the zone unhealthy and another zone healthy.', labelNames: ['zone'], registers }),
      unhealthy: new Gauge({ name: 'cellgate_autopilot_zone_unhealthy_reports', help: 'Gateways that report the zone unhealthy.', labelNames: ['zone'], registers }),
      live: new Gauge({ name: 'cellgate_autopilot_live_gateways', help: 'Live gateways with a valid presence record.', registers }),
      paused: new Gauge({ name: 'cellgate_autopilot_paused', help: '1 while the pause flag is set.', registers }),
    };
    this.metrics.leader.set(0);
  }

  get isLeader(): boolean {
    return this.leader;
  }

  /** Watches connected and the pause flag read: this replica could lead. */
  get ready(): boolean {
    return this.tableConnected && this.presenceOk && this.pauseKnown && this.table !== null;
  }

  async start(): Promise<void> {
    this.pauseWatch = await this.control.watchPause((s) => {
      this.pause = s;
      this.pauseKnown = true;
      this.metrics.paused.set(s.paused ? 1 : 0);
      this.o.log.info({ event: 'autopilot.pause', ...s }, s.paused ? 'paused' : 'running');
    });
    this.tableWatch = this.o.store.watch({
      onTable: (vt) => {
        this.table = vt;
        void this.readHistory();
      },
      onConnection: (c) => {
        this.tableConnected = c;
        this.o.log.info({ event: 'autopilot.store_connection', connected: c });
      },
    });
    this.presenceWatch = this.o.store.presence.watch({
      onSnapshot: (s) => {
        this.records = s.records;
        this.presenceOk = true;
        this.evaluate();
      },
      onError: (err) => {
        this.presenceOk = false;
        this.o.log.warn({ event: 'autopilot.presence_error', error: err.message });
      },
    });
    this.runCampaign();
    this.tick = setInterval(() => this.evaluate(), this.o.tickMs ?? 250);
  }

  /** The current view (admin /status). */
  status(): Record<string, unknown> {
    return {
      id: this.o.id, leader: this.leader, ready: this.ready, paused: this.pause, executing: this.executing,
      settings: this.engine.settings, tableVersion: this.table?.version ?? null, liveGateways: this.records.map((r) => r.id),
      downByAutopilot: [...this.past.downByAutopilot], lastActionAt: this.past.lastActionMs === null ? null : new Date(this.past.lastActionMs).toISOString(),
      zones: this.lastDecisions.map((d) => ({
        zone: d.zone, action: d.action, result: d.result, why: d.why, witnesses: d.evidence.witnesses, witnessZones: d.evidence.witnessZones,
        live: d.evidence.live, unhealthy: d.evidence.unhealthy, holdingSince: d.holdingSinceMs === null ? null : new Date(d.holdingSinceMs).toISOString(),
      })),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    if (this.retry) clearTimeout(this.retry);
    this.leader = false;
    this.metrics.leader.set(0);
    await Promise.allSettled([
      this.campaign?.resign(), this.tableWatch?.close(), this.presenceWatch?.close(), this.pauseWatch?.cancel(),
    ]);
  }

  private runCampaign(): void {
    if (this.closed) return;
    const campaign = this.control.campaign(this.o.id, this.o.leaseTtlSeconds ?? 5);
    this.campaign = campaign;
    campaign.on('elected', () => {
      if (this.closed || this.campaign !== campaign) return;
      this.leader = true;
      this.metrics.leader.set(1);
      this.o.log.info({ event: 'autopilot.elected', id: this.o.id }, 'leader');
      void this.readHistory();
    });
    campaign.on('error', (err: Error) => {
      // The lease is gone (or etcd refused): stop acting now, then campaign again.
      const was = this.leader;
      this.leader = false;
      this.metrics.leader.set(0);
      this.o.log.warn({ event: 'autopilot.campaign_error', wasLeader: was, error: err.message });
      if (this.campaign === campaign) this.campaign = null;
      if (!this.closed) this.retry = setTimeout(() => this.runCampaign(), 1000);
    });
  }

  private async readHistory(): Promise<void> {
    try {
      this.past = autopilotPast(await this.o.store.listHistory());
    } catch (err) {
      this.o.log.warn({ event: 'autopilot.history_error', error: (err as Error).message });
    }
  }

  private evaluate(): void {
    if (!this.leader || this.executing || !this.table || this.closed) return;
    const ev = this.engine.evaluate({
      nowMs: Date.now(), table: this.table.table, records: this.records,
      storeFresh: this.tableConnected && this.presenceOk && this.pauseKnown,
      paused: this.pause.paused, downByAutopilot: this.past.downByAutopilot, lastActionMs: this.past.lastActionMs,
    });
    this.lastDecisions = ev.decisions;
    this.metrics.live.set(this.records.length);
    for (const d of ev.decisions) {
      this.metrics.witnesses.set({ zone: d.zone }, d.evidence.witnesses.length);
      this.metrics.unhealthy.set({ zone: d.zone }, d.evidence.unhealthy);
      if (!d.changed) continue;
      this.metrics.decisions.inc({ action: d.action, result: d.result });
      const level = d.result === 'no_evidence' && d.evidence.unhealthy === 0 ? 'debug' : 'info';
      this.o.log[level]({
        event: 'autopilot.decision', zone: d.zone, action: d.action, result: d.result, why: d.why,
        witnesses: d.evidence.witnesses, live: d.evidence.live, tableVersion: this.table.version,
      });
    }
    if (ev.act) void this.execute(ev.act);
  }

  private async execute(d: Decision): Promise<void> {
    this.executing = true;
    const started = Date.now();
    try {
      // The flag is read again right before writing: a pause set a moment ago wins.
      const pause = await this.control.pauseState();
      if (pause.paused || !this.leader) {
        this.o.log.info({ event: 'autopilot.action_skipped', zone: d.zone, action: d.action, paused: pause.paused, leader: this.leader });
        return;
      }
      const nowMs = Date.now();
      const executor = new FailoverExecutor({
        store: this.o.store, actor: AUTOPILOT_ACTOR, reason: d.why, nowMs,
        makePlan: (t) => (d.action === 'zone_down' ? planZoneDown(t, d.zone, { nowMs }) : planZoneUp(t, d.zone, { nowMs })),
      });
      const result = await executor.run();
      this.metrics.decisions.inc({ action: d.action, result: 'executed' });
      this.o.log.info({
        event: 'autopilot.action_done', zone: d.zone, action: d.action, versionBefore: result.versionBefore, versionAfter: result.versionAfter,
        converged: result.convergence?.converged ?? null, ms: Date.now() - started,
      });
      await this.readHistory();
    } catch (err) {
      this.metrics.decisions.inc({ action: d.action, result: 'failed' });
      this.o.log.error({ event: 'autopilot.action_failed', zone: d.zone, action: d.action, error: (err as Error).message });
    } finally {
      this.executing = false;
    }
  }
}
