// What a scenario file declares: the topology, the load, a timeline of faults and operator
// actions, how long to run, and the invariants that must hold. Scenarios are data plus the
// step and invariant constructors (steps.ts, invariants.ts); the runner (runner.ts) does
// everything else.
import type { ClientRecord, ClientSpec } from './clients';
import type { EjectionSample } from './sampler';
import type { WsRecords } from './ws-clients';
import type { ZoneLogLine } from './zone-server';
import type { StreamLogLine } from './zone-streams';
import type { LoadSpec, RequestRecord } from './load';
import type { PresenceEvent, TableEvent } from './recorder';
import type { Step, StepOutcome } from './steps';
import type { TopologyOverrides } from './topology';

export interface Scenario {
  /** kebab-case, unique: what `--scenario NAME` selects and the report shows. */
  readonly name: string;
  readonly title: string;
  /** What an SRE learns from it: the failure, the expected behaviour. */
  readonly description: string;
  /** Part of the quick suite (CI). */
  readonly quick: boolean;
  readonly topology?: TopologyOverrides;
  readonly load: LoadSpec;
  /** Odd, slow and long-lived clients beside the load (clients.ts, ws-clients.ts). */
  readonly clients?: readonly ClientSpec[];
  /** Sample the gateways' ejected endpoints every 250 ms (for `no endpoint ejected while healthy`). */
  readonly sampleEjections?: boolean;
  /** How long the load runs at least (ms); the timeline's start times must fit in it. */
  readonly durationMs: number;
  /**
   * The load also runs at least this long after the last step finished (default 3 s), so
   * that what follows an operation is observed even when a slow machine delays the steps.
   */
  readonly tailMs?: number;
  readonly timeline: readonly Step[];
  readonly invariants: readonly Invariant[];
  /** Bound for every live gateway to apply a revision (and for the final convergence check). */
  readonly convergeBoundMs?: number;
}

export interface GatewayFinal {
  readonly id: string;
  readonly running: boolean;
  readonly version: number | null;
  readonly checksum: string | null;
  /** cellgate_buffered_requests at the end (held requests left behind). */
  readonly buffered: number | null;
  readonly bufferTimeouts: number | null;
  readonly rejectedTables: number | null;
}

/** Everything a run produced: what the invariants and figures are computed from. */
export interface RunData {
  readonly scenario: Scenario;
  /** When the load started (all times are epoch ms). */
  readonly t0: number;
  readonly tLoadEnd: number;
  readonly gatewayIds: readonly string[];
  readonly requests: readonly RequestRecord[];
  readonly skipped: number;
  readonly zoneLog: readonly ZoneLogLine[];
  /** The zone servers' WebSocket and slow-response events. */
  readonly streamLog: readonly StreamLogLine[];
  /** What the scenario's `clients` sent and got. */
  readonly clients: readonly ClientRecord[];
  readonly ws: WsRecords;
  readonly ejections: readonly EjectionSample[];
  readonly tables: readonly TableEvent[];
  readonly presence: readonly PresenceEvent[];
  readonly steps: readonly StepOutcome[];
  readonly final: {
    readonly store: { readonly version: number; readonly checksum: string } | null;
    readonly gateways: readonly GatewayFinal[];
    /** When every running gateway was on the store's table after the load (null: never within the bound). */
    readonly convergedAt: number | null;
  };
}

export interface InvariantResult {
  readonly name: string;
  readonly passed: boolean;
  readonly detail: string;
}

export interface Invariant {
  readonly name: string;
  check(run: RunData): { passed: boolean; detail: string };
}

export function defineScenario(s: Scenario): Scenario {
  const names = new Set<string>();
  for (const step of s.timeline) {
    if (step.at < 0 || step.at > s.durationMs) throw new Error(`scenario ${s.name}: step "${step.label}" at ${step.at} ms is outside the run (0..${s.durationMs})`);
    if (names.has(step.label)) throw new Error(`scenario ${s.name}: two steps are labelled "${step.label}"`);
    for (const w of step.waitFor ?? []) {
      if (!names.has(w)) throw new Error(`scenario ${s.name}: step "${step.label}" waits for "${w}", which is not an earlier step`);
    }
    names.add(step.label);
  }
  return s;
}
