// The routing-change commands: thin shells over the planner and the executor.
import { cgError } from '../../errors';
import {
  planCellMove, planRegionDown, planRegionUp, planRestore, planZoneDown, planZoneDrain, planZoneUp, type PlannerOptions,
} from '../../failover/planner';
import { rebuiltBase } from '../../failover/epochs';
import { mustLoad } from '../../failover/executor';
import { decimal } from '../args';
import type { Command, CommandContext } from '../command';
import { CHANGE_OPTIONS, plannerOptions, runChange } from './change';

const STORE = '(--file PATH | --etcd HOST:PORT)';
const CHANGE_FLAGS = '--reason TEXT [--yes] [--dry-run] [--force] [--timeout S] [--json]';

function oneName(ctx: CommandContext, what: string, count = 1): string[] {
  const names = ctx.args.positionals;
  if (names.length !== count) throw cgError('USAGE', `expected ${count === 1 ? `one ${what}` : what}, got ${names.length ? names.join(' ') : 'nothing'}`);
  return names;
}

function batchOption(ctx: CommandContext): PlannerOptions {
  const raw = ctx.args.values.batch;
  if (raw === undefined) return {};
  const n = decimal(String(raw));
  if (!Number.isInteger(n) || n < 1) throw cgError('USAGE', `--batch must be a positive integer, got "${String(raw)}"`);
  return { batchSize: n };
}

export const zoneDownCommand: Command = {
  words: ['zone', 'down'],
  usage: `cellctl zone down ZONE ${STORE} ${CHANGE_FLAGS}`,
  summary: 'unplanned failover: mark ZONE down and move its cells to the nearest up zones at once',
  examples: ['cellctl zone down sh-a --reason "power loss in sh-a" --yes --etcd etcd-1.internal:2379', 'cellctl zone down sh-a --dry-run --file table.json'],
  options: CHANGE_OPTIONS,
  run: (ctx) => { const [zone] = oneName(ctx, 'ZONE'); const o = plannerOptions(ctx); return runChange(ctx, (t) => planZoneDown(t, zone, o)); },
};

export const zoneDrainCommand: Command = {
  words: ['zone', 'drain'],
  usage: `cellctl zone drain ZONE ${STORE} ${CHANGE_FLAGS}`,
  summary: 'planned: move every cell off ZONE with the freeze protocol (no request fails)',
  examples: ['cellctl zone drain hz-a --reason "maintenance window" --yes --etcd etcd-1.internal:2379'],
  options: CHANGE_OPTIONS,
  run: (ctx) => { const [zone] = oneName(ctx, 'ZONE'); const o = plannerOptions(ctx); return runChange(ctx, (t) => planZoneDrain(t, zone, o)); },
};

export const zoneUpCommand: Command = {
  words: ['zone', 'up'],
  usage: `cellctl zone up ZONE [--batch N] ${STORE} ${CHANGE_FLAGS}`,
  summary: 'failback: mark ZONE up and return its home cells, N at a time, each batch a planned move',
  examples: ['cellctl zone up sh-a --batch 4 --reason "sh-a repaired" --yes --file table.json'],
  options: { ...CHANGE_OPTIONS, batch: { type: 'string' } },
  run: (ctx) => { const [zone] = oneName(ctx, 'ZONE'); const o = plannerOptions(ctx, batchOption(ctx)); return runChange(ctx, (t) => planZoneUp(t, zone, o)); },
};

export const cellMoveCommand: Command = {
  words: ['cell', 'move'],
  usage: `cellctl cell move CELL ZONE ${STORE} ${CHANGE_FLAGS}`,
  summary: 'planned: move one cell to ZONE with the freeze protocol',
  examples: ['cellctl cell move c07 sz-a --reason "rebalance" --yes --etcd etcd-1.internal:2379'],
  options: CHANGE_OPTIONS,
  run: (ctx) => { const [cell, zone] = oneName(ctx, 'CELL ZONE', 2); const o = plannerOptions(ctx); return runChange(ctx, (t) => planCellMove(t, cell, zone, o)); },
};

export const regionDownCommand: Command = {
  words: ['region', 'down'],
  usage: `cellctl region down REGION ${STORE} ${CHANGE_FLAGS}`,
  summary: 'unplanned: every zone of REGION down; cells cross to other regions',
  examples: ['cellctl region down east --reason "regional outage" --yes --force --etcd etcd-1.internal:2379'],
  options: CHANGE_OPTIONS,
  run: (ctx) => { const [region] = oneName(ctx, 'REGION'); const o = plannerOptions(ctx); return runChange(ctx, (t) => planRegionDown(t, region, o)); },
};

export const regionUpCommand: Command = {
  words: ['region', 'up'],
  usage: `cellctl region up REGION [--batch N] ${STORE} ${CHANGE_FLAGS}`,
  summary: 'failback of a region: its zones up, their home cells return in planned batches',
  examples: ['cellctl region up east --batch 8 --reason "east restored" --yes --etcd etcd-1.internal:2379'],
  options: { ...CHANGE_OPTIONS, batch: { type: 'string' } },
  run: (ctx) => { const [region] = oneName(ctx, 'REGION'); const o = plannerOptions(ctx, batchOption(ctx)); return runChange(ctx, (t) => planRegionUp(t, region, o)); },
};

export const rollbackCommand: Command = {
  words: ['rollback'],
  usage: `cellctl rollback REVISION ${STORE} ${CHANGE_FLAGS}`,
  summary: 'restore the table of an earlier revision (from the history) as a new change',
  examples: ['cellctl history --etcd etcd-1.internal:2379', 'cellctl rollback 57 --reason "undo the drain" --yes --etcd etcd-1.internal:2379'],
  options: CHANGE_OPTIONS,
  async run(ctx) {
    const [raw] = oneName(ctx, 'REVISION');
    const version = decimal(raw);
    if (!Number.isInteger(version) || version < 1) throw cgError('USAGE', `REVISION must be a positive integer, got "${raw}"`);
    const store = ctx.store();
    const history = await store.listHistory();
    const entry = history.find((h) => h.versionAfter === version);
    if (!entry) throw cgError('USAGE', `no history entry ends at revision ${version} (see cellctl history)`);
    const o = plannerOptions(ctx);
    // An invalid document, or a table behind the epochs already issued, is rebuilt first (epochs.ts).
    const rebuilt = await rebuiltBase(store);
    const loadBase = async () => (await rebuiltBase(store)) ?? mustLoad(store);
    return runChange(ctx, (t) => planRestore(t, entry.table, version, o), rebuilt ? { loadBase, alwaysWrite: true } : undefined);
  },
};
