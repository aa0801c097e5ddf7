// `cellctl autopilot pause|resume|status`: the pause flag in the store (the leader honours it
// at once, and reads it again right before any write) and who leads now.
import { AutopilotControl, etcdOf } from '../autopilot/control';
import { cgError } from '../errors';
import { stringOption } from './args';
import type { TableStore } from '../store/types';
import type { Command, CommandContext } from './command';
import { escapeForTerminal } from './output';
import { actorOf } from './commands/init';

const STORE = '--etcd HOST:PORT[,…] [--prefix P]';

async function setFlag(ctx: CommandContext, paused: boolean): Promise<number> {
  const reason = stringOption(ctx.args.values, 'reason');
  if (paused && !reason) throw cgError('USAGE', 'autopilot pause needs --reason TEXT');
  const control = new AutopilotControl(etcdOf(ctx.store()));
  await control.setPaused(paused, actorOf(ctx.args.values), reason ?? '');
  const state = await control.pauseState();
  if (ctx.out.json) ctx.out.data(state);
  else ctx.out.text(state.paused ? `autopilot paused by ${escapeForTerminal(state.actor ?? '?')} (${escapeForTerminal(state.reason ?? '')})` : 'autopilot running (not paused)');
  return 0;
}

export const autopilotPauseCommand: Command = {
  words: ['autopilot', 'pause'], usage: `cellctl autopilot pause ${STORE} --reason TEXT [--actor NAME] [--json]`,
  summary: 'Pause the autopilot: it keeps deciding and logging, and writes nothing until resumed',
  examples: ['cellctl autopilot pause --etcd etcd-1.internal:2379 --reason "maintenance of sh-a"'],
  options: { reason: { type: 'string' }, actor: { type: 'string' } },
  run: (ctx) => setFlag(ctx, true),
};

export const autopilotResumeCommand: Command = {
  words: ['autopilot', 'resume'], usage: `cellctl autopilot resume ${STORE} [--json]`,
  summary: 'Resume the autopilot (remove the pause flag)',
  examples: ['cellctl autopilot resume --etcd etcd-1.internal:2379'],
  options: { actor: { type: 'string' } },
  run: (ctx) => setFlag(ctx, false),
};

export const autopilotStatusCommand: Command = {
  words: ['autopilot', 'status'], usage: `cellctl autopilot status ${STORE} [--json]`,
  summary: 'Whether the autopilot is paused, and which replica leads',
  examples: ['cellctl autopilot status --etcd etcd-1.internal:2379 --json'],
  options: {},
  run: async (ctx) => {
    const status = await autopilotStatusOf(ctx.store());
    if (!status) etcdOf(ctx.store()); // throws the file-store message
    if (ctx.out.json) ctx.out.data(status);
    else ctx.out.text(autopilotStatusText(status!));
    return 0;
  },
};

export interface AutopilotStatus {
  readonly paused: boolean;
  readonly actor: string | null;
  readonly at: string | null;
  readonly reason: string | null;
  readonly leader: string | null;
}

/** The autopilot's flag and leader for `cellctl status` (null for a store without an autopilot). */
export async function autopilotStatusOf(store: TableStore): Promise<AutopilotStatus | null> {
  if (!(store as { etcd?: unknown }).etcd) return null;
  const control = new AutopilotControl(etcdOf(store));
  const [state, leader] = await Promise.all([control.pauseState(), control.leader()]);
  return { ...state, leader };
}

/** One line of text; every part written by another process is escaped for the terminal. */
export function autopilotStatusText(s: AutopilotStatus): string {
  const e = (v: string | null) => escapeForTerminal(v ?? '?');
  return `autopilot: ${s.paused ? `PAUSED by ${e(s.actor)} at ${e(s.at)} (${e(s.reason)})` : 'running'}; leader: ${s.leader === null ? 'none' : e(s.leader)}`;
}

export const AUTOPILOT_COMMANDS: readonly Command[] = [autopilotPauseCommand, autopilotResumeCommand, autopilotStatusCommand];
