// cellctl rebalance: homes spread over the zones by capacity, or a share of the cells lent
// to elastic zones and given back; batched planned moves (failover/rebalance.ts decides
// which cells, the executor runs each batch with the freeze protocol).
import type { RoutingTable } from '../../cells/types';
import { cgError } from '../../errors';
import type { Plan, PlannerOptions } from '../../failover/planner';
import { planAllBatches, planOffElastic, planOntoElastic, planRebalance } from '../../failover/rebalance';
import { stringOption } from '../args';
import type { Command, CommandContext } from '../command';
import { planJson, planText } from '../plan-view';
import { CHANGE_OPTIONS, plannerOptions, runChange } from './change';
import { loadView } from './route';

function batchOption(ctx: CommandContext): PlannerOptions {
  const raw = stringOption(ctx.args.values, 'batch');
  if (raw === undefined) return {};
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw cgError('USAGE', `--batch must be a positive integer, got "${raw}"`);
  return { batchSize: n };
}

function shareOption(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw cgError('USAGE', `--onto-elastic SHARE must be a number in (0, 1], e.g. 0.25, got "${raw}"`);
  return n;
}

/** The plan maker the flags ask for. */
function planner(ctx: CommandContext): (t: RoutingTable) => Plan {
  const { values, positionals } = ctx.args;
  if (positionals.length) throw cgError('USAGE', `rebalance takes no arguments, got ${positionals.join(' ')}`);
  const onto = stringOption(values, 'onto-elastic');
  const off = values['off-elastic'] === true;
  if (onto !== undefined && off) throw cgError('USAGE', 'give --onto-elastic SHARE or --off-elastic, not both');
  const o = plannerOptions(ctx, batchOption(ctx));
  if (onto !== undefined) {
    const share = shareOption(onto);
    return (t) => planOntoElastic(t, share, o);
  }
  return off ? (t) => planOffElastic(t, o) : (t) => planRebalance(t, o);
}

/** A dry run shows every batch, each planned on the result of the one before. */
async function dryRun(ctx: CommandContext, makePlan: (t: RoutingTable) => Plan): Promise<number> {
  const current = await loadView(ctx.store());
  const plans = planAllBatches(current.table, makePlan);
  const moved = plans.reduce((n, p) => n + p.moves.length, 0);
  if (ctx.out.json) {
    ctx.out.data({ dryRun: true, version: current.version, batches: plans.map(planJson), moves: moved });
  } else {
    const parts = plans.map((p, i) => `batch ${i + 1} of ${plans.length}${i ? ', planned on the result of the batches before' : ''}:\n${planText(p, current.version)}`);
    ctx.out.text(`${parts.join('\n\n')}\n\n${moved} cell move(s) in ${plans.length} batch(es) (dry run: nothing written)`);
  }
  const force = ctx.args.values.force === true;
  return plans.some((p) => p.guard.length) && !force ? 3 : 0;
}

export const rebalanceCommand: Command = {
  words: ['rebalance'],
  usage: 'cellctl rebalance [--batch N] [--onto-elastic SHARE | --off-elastic] (--file PATH | --etcd HOST:PORT) --reason TEXT [--yes] [--dry-run] [--force] [--max-move-share S] [--json]',
  summary: 'spread cell homes over the up zones by capacity (or --onto-elastic SHARE / --off-elastic), in planned batches',
  examples: [
    'cellctl rebalance --dry-run --etcd etcd-1.internal:2379',
    'cellctl rebalance --batch 4 --reason "sh-c added" --yes --etcd etcd-1.internal:2379',
    'cellctl rebalance --onto-elastic 0.25 --reason "festival peak" --yes --etcd etcd-1.internal:2379',
    'cellctl rebalance --off-elastic --reason "peak over" --yes --etcd etcd-1.internal:2379',
  ],
  options: { ...CHANGE_OPTIONS, batch: { type: 'string' }, 'onto-elastic': { type: 'string' }, 'off-elastic': { type: 'boolean' } },
  run: (ctx) => {
    const makePlan = planner(ctx);
    return ctx.args.values['dry-run'] === true ? dryRun(ctx, makePlan) : runChange(ctx, makePlan);
  },
};
