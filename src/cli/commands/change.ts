// The shared flow of every routing change (zone down/drain/up, cell move, region down/up,
// rollback): plan, show, confirm, execute with CAS, wait for the gateways, report.
import { createInterface } from 'node:readline/promises';
import type { RoutingTable, VersionedTable } from '../../cells/types';
import { cgError } from '../../errors';
import { FailoverExecutor, planIsEmpty, type ExecutorEvent } from '../../failover/executor';
import type { Plan, PlannerOptions } from '../../failover/planner';
import { decimal, stringOption, type OptionSpec } from '../args';
import type { CommandContext } from '../command';
import { planJson, planText, progressText } from '../plan-view';
import { actorOf } from './init';
import { loadView } from './route';

export const CHANGE_OPTIONS = {
  reason: { type: 'string' },
  actor: { type: 'string' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' },
  timeout: { type: 'string' },
  'max-move-share': { type: 'string' },
  'freeze-ms': { type: 'string' },
} as const satisfies OptionSpec;

function numberFlag(ctx: CommandContext, name: string, min: number, max: number): number | undefined {
  const raw = stringOption(ctx.args.values, name);
  if (raw === undefined) return undefined;
  const n = decimal(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw cgError('USAGE', `--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return n;
}

export function plannerOptions(ctx: CommandContext, extra: PlannerOptions = {}): PlannerOptions {
  // nowMs: cells whose freeze deadline has passed are cleaned up by this change.
  return { force: ctx.args.values.force === true, maxMovedShare: numberFlag(ctx, 'max-move-share', 0, 1), nowMs: Date.now(), ...extra };
}

async function askTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export interface BaseOverride {
  /** Reads the table to plan on instead of the store's current one. */
  readonly loadBase: () => Promise<VersionedTable>;
  /** Write even when the plan changes nothing (a repair). */
  readonly alwaysWrite: boolean;
}

export async function runChange(ctx: CommandContext, makePlan: (table: RoutingTable) => Plan, base?: BaseOverride): Promise<number> {
  const { args, out } = ctx;
  const reason = stringOption(args.values, 'reason');
  const dryRun = args.values['dry-run'] === true;
  if (!dryRun && !reason) throw cgError('USAGE', 'a change needs --reason TEXT (it goes into the history)');
  const timeoutS = numberFlag(ctx, 'timeout', 0, 3600) ?? 10;
  const freezeMs = numberFlag(ctx, 'freeze-ms', 500, 600_000);
  const opts = plannerOptions(ctx);
  const store = ctx.store();

  if (dryRun) {
    const current = base ? await base.loadBase() : await loadView(store);
    const plan = makePlan(current.table);
    if (out.json) out.data({ dryRun: true, version: current.version, plan: planJson(plan) });
    else out.text(planText(plan, current.version) + '\n\n(dry run: nothing written)');
    return plan.guard.length && !opts.force ? 3 : 0;
  }
  const interactive = process.stdin.isTTY === true && !out.json;
  if (args.values.yes !== true && !interactive) throw cgError('USAGE', 'not a terminal: pass --yes to confirm the change');
  const showProgress = process.stderr.isTTY === true;

  const onEvent = (e: ExecutorEvent) => {
    switch (e.type) {
      case 'plan':
      case 'replan':
        if (e.type === 'replan') out.note(`the table changed (now revision ${e.version}): planned again`);
        if (!out.json) out.note(planText(e.plan, e.version));
        return;
      case 'written':
        out.note(`${e.phase === 'freeze' ? 'froze moving cells' : e.phase === 'flip' ? 'flipped cells to their new zones' : e.phase === 'unfreeze' ? 'withdrew the freeze' : 'wrote the change'} at revision ${e.version}`);
        return;
      case 'converging':
        if (showProgress || !e.status.converged) out.note(progressText(e.status, e.phase === 'freeze' ? 'the frozen' : 'the new'));
        return;
    }
  };
  const executor = new FailoverExecutor({
    ...opts, store, makePlan, loadBase: base?.loadBase, alwaysWrite: base?.alwaysWrite, actor: actorOf(args.values), reason: reason as string, freezeMs,
    convergeTimeoutMs: timeoutS * 1000, onEvent,
    confirm: args.values.yes === true ? undefined : (plan, replanned) => askTerminal(`${replanned ? 'The plan changed. ' : ''}Apply ${plan.action}? [y/N] `),
  });
  const result = await executor.run();
  if (result.cancelled) {
    out.note('cancelled: nothing written');
    return 1;
  }
  const last = result.plans[result.plans.length - 1];
  // What was observed: null when nothing was written, so nothing had to be waited for.
  const seen = result.convergence;
  if (out.json) {
    out.data({
      plans: result.plans.map(planJson), versionBefore: result.versionBefore, versionAfter: result.versionAfter,
      gateways: seen ? seen.gateways.length : null, converged: seen ? seen.converged : null,
      gatewaysOnRevision: seen ? seen.gateways.filter((g) => !seen.behind.includes(g)).map((g) => g.id) : null,
    });
  } else if (base?.alwaysWrite && result.versionAfter !== result.versionBefore) {
    // A repair writes even an empty plan: say so, not "nothing to change".
    const what = !last || planIsEmpty(last) ? 'the last table cellctl wrote' : `the result of ${last.action}`;
    const who = seen ? `${seen.gateways.length} live gateway(s) applied it` : 'no convergence was observed';
    out.text(`repaired: revision ${result.versionBefore} held an invalid document; replaced it with ${what}, revision ${result.versionBefore} -> ${result.versionAfter}; ${who}`);
  } else if (!last || planIsEmpty(last) || !seen) {
    out.text('nothing to change');
  } else {
    const who = seen.gateways.length === 0 ? 'no live gateway was registered to apply it' : `${seen.gateways.length} live gateway(s) applied it`;
    out.text(`done: ${last.action}, revision ${result.versionBefore} -> ${result.versionAfter}; ${who}`);
  }
  return 0;
}
