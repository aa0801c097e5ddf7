// The autopilot's decision (pure; the clock is the caller's `nowMs`). Each evaluation looks
// at every zone of the table and the live gateways' reports and says, per zone, what it
// would do and why; at most one action comes out of an evaluation. Rules (docs/autopilot.md):
//   down: the evidence rule (evidence.ts) holds continuously for downAfterMs;
//   up (only with autoFailback, only zones the autopilot took down): a majority reports the
//     zone healthy continuously for upAfterMs;
//   rails, checked in this order: paused, stale store view, max-down-share, last up zone,
//     cooldown. Dry run decides the same and writes nothing.
// Every per-zone verdict is a structured record; `changed` marks the ones that differ from the
// previous evaluation (what is logged and counted, so a steady state is not logged per tick).
import type { RoutingTable, Zone } from '../cells/types';
import type { PresenceRecord } from '../store/types';
import { evidenceText, zoneEvidence, type ZoneEvidence } from './evidence';

export interface AutopilotSettings {
  readonly downAfterMs: number;
  readonly upAfterMs: number;
  readonly cooldownMs: number;
  /** Most of the estate's total capacity the autopilot may hold down at once (0..1). */
  readonly maxDownShare: number;
  readonly autoFailback: boolean;
  readonly dryRun: boolean;
}

export const DEFAULT_SETTINGS: AutopilotSettings = {
  downAfterMs: 5_000, upAfterMs: 120_000, cooldownMs: 60_000, maxDownShare: 0.34, autoFailback: false, dryRun: false,
};

export type Action = 'zone_down' | 'zone_up';
export const RESULTS = [
  'taken', 'dry_run', 'waiting', 'no_evidence', 'paused', 'stale', 'max_down_share', 'last_up_zone', 'cooldown',
] as const;
export type Result = (typeof RESULTS)[number];

export interface Decision {
  readonly zone: string;
  readonly action: Action;
  readonly result: Result;
  /** Why, in words (goes to the log and, for a taken action, the change's reason). */
  readonly why: string;
  readonly evidence: ZoneEvidence;
  /** Since when the rule has held (ms), null when it does not. */
  readonly holdingSinceMs: number | null;
  /** This verdict differs from the previous evaluation's for the zone. */
  readonly changed: boolean;
}

export interface EvaluationInput {
  readonly nowMs: number;
  readonly table: RoutingTable;
  readonly records: readonly PresenceRecord[];
  /** The leader's view of the store is current (watch connected, lease held). */
  readonly storeFresh: boolean;
  readonly paused: boolean;
  /** Zones now down whose last status change was the autopilot's (from the history). */
  readonly downByAutopilot: ReadonlySet<string>;
  /** The autopilot's last action time, from the history (a new leader inherits the cooldown). */
  readonly lastActionMs: number | null;
}

export interface Evaluation {
  readonly decisions: readonly Decision[];
  /** The one action to carry out now (result 'taken'), if any. */
  readonly act: Decision | null;
}

export class AutopilotEngine {
  readonly settings: AutopilotSettings;
  /** Since when each zone's rule (down or up) has held without a break. */
  private readonly holding = new Map<string, { action: Action; sinceMs: number }>();
  private readonly lastVerdict = new Map<string, string>();
  private lastActionMs: number | null = null;

  constructor(settings: Partial<AutopilotSettings> = {}) {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
  }

  evaluate(input: EvaluationInput): Evaluation {
    const lastAction = Math.max(input.lastActionMs ?? -Infinity, this.lastActionMs ?? -Infinity);
    const decisions: Decision[] = [];
    let act: Decision | null = null;
    const downNow = new Set(input.downByAutopilot);
    // Zones whose rule has held longest go first (two zones at once: the first one acts).
    const zones = [...input.table.zones].sort((a, b) => this.since(a.name, input.nowMs) - this.since(b.name, input.nowMs) || a.name.localeCompare(b.name));
    for (const zone of zones) {
      const d = this.decide(zone, input, lastAction, downNow, act !== null);
      if (!d) continue;
      if (d.result === 'taken' || d.result === 'dry_run') {
        act = d.result === 'taken' ? d : act;
        this.lastActionMs = input.nowMs;
        this.holding.delete(zone.name);
        if (d.action === 'zone_down') downNow.add(zone.name);
        else downNow.delete(zone.name);
      }
      decisions.push(d);
    }
    return { decisions, act };
  }

  private since(zone: string, nowMs: number): number {
    return this.holding.get(zone)?.sinceMs ?? nowMs;
  }

  private decide(zone: Zone, input: EvaluationInput, lastAction: number, downNow: Set<string>, acted: boolean): Decision | null {
    const evidence = zoneEvidence(zone.name, input.records);
    const action: Action | null = zone.status === 'down'
      ? (this.settings.autoFailback && input.downByAutopilot.has(zone.name) ? 'zone_up' : null)
      : 'zone_down';
    if (!action) return null;
    const rule = action === 'zone_down' ? evidence.down : evidence.up;
    const wait = action === 'zone_down' ? this.settings.downAfterMs : this.settings.upAfterMs;
    const held = this.holding.get(zone.name);
    if (!rule) {
      this.holding.delete(zone.name);
      const why = action === 'zone_down'
        ? (evidence.unhealthy === 0 ? 'healthy' : `not enough evidence: ${evidenceText(evidence)}`)
        : `not healthy for a majority (${evidence.healthy} of ${evidence.live})`;
      return this.record(zone.name, action, 'no_evidence', why, evidence, null);
    }
    const sinceMs = held && held.action === action ? held.sinceMs : input.nowMs;
    this.holding.set(zone.name, { action, sinceMs });
    const verdict = (result: Result, why: string) => this.record(zone.name, action, result, why, evidence, sinceMs);
    if (input.nowMs - sinceMs < wait) return verdict('waiting', `rule holds since ${new Date(sinceMs).toISOString()}; acts after ${wait} ms`);
    if (input.paused) return verdict('paused', 'the autopilot is paused (cellctl autopilot resume)');
    if (!input.storeFresh) return verdict('stale', "the leader's view of the store is not current");
    if (action === 'zone_down') {
      const total = input.table.zones.reduce((s, z) => s + z.capacity, 0);
      const held = input.table.zones.filter((z) => downNow.has(z.name)).reduce((s, z) => s + z.capacity, 0);
      const share = total > 0 ? (held + zone.capacity) / total : 1;
      if (share > this.settings.maxDownShare) {
        return verdict('max_down_share', `would hold ${(share * 100).toFixed(1)}% of capacity down, over max-down-share ${(this.settings.maxDownShare * 100).toFixed(1)}%`);
      }
      const upLeft = input.table.zones.filter((z) => z.name !== zone.name && z.status === 'up' && !downNow.has(z.name)).length;
      if (upLeft === 0) return verdict('last_up_zone', 'it is the last up zone');
    }
    if (acted || input.nowMs - lastAction < this.settings.cooldownMs) {
      return verdict('cooldown', `cooldown: last action ${acted ? 'in this evaluation' : `at ${new Date(lastAction).toISOString()}`}, ${this.settings.cooldownMs} ms between actions`);
    }
    const what = action === 'zone_down' ? evidenceText(evidence) : `${evidence.healthy} of ${evidence.live} live gateways see ${zone.name} healthy`;
    return verdict(this.settings.dryRun ? 'dry_run' : 'taken', `autopilot: ${what}; rule held ${input.nowMs - sinceMs} ms`);
  }

  private record(zone: string, action: Action, result: Result, why: string, evidence: ZoneEvidence, holdingSinceMs: number | null): Decision {
    // "changed" compares result and the gist (not timestamps), so a steady state logs once.
    const key = `${action}:${result}:${evidence.witnesses.length}:${evidence.live}:${evidence.unhealthy}`;
    const changed = this.lastVerdict.get(zone) !== key;
    this.lastVerdict.set(zone, key);
    return { zone, action, result, why, evidence, holdingSinceMs, changed };
  }
}
