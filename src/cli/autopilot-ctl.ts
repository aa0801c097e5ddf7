// `cellctl autopilot pause|resume|status`: the pause flag in the store (the leader honours it
// at once, and reads it again right before any write) and who leads now.
import { AutopilotControl, etcdOf } from '../autopilot/control';
import { cgError } from '../errors';
import { stringOption } from './args';
import type { Command, CommandContext } from './command';
import { actorOf } from './commands/init';

const STORE = '--etcd HOST:PORT[,…] [--prefix P]';

async function setFlag(ctx: CommandContext, paused: boolean): Promise<number> {
  const reason = stringOption(ctx.args.values, 'reason');
  if (paused && !reason) throw cgError('USAGE', 'autopilot pause needs --reason TEXT');
  const control = new AutopilotControl(etcdOf(ctx.store()));
  await control.setPaused(paused, actorOf(ctx.args.values), reason ?? '');
  const state = await control.pauseState();
  if (ctx.out.json) ctx.out.data(state);
  else ctx.out.text(state.paused ? `autopilot paused by ${state.actor} (${state.reason})` : 'autopilot running (not paused)');
  return 0;
}

export const autopilotPauseCommand: Command = {
  words: ['autopilot', 'pause'], usage: `cellctl autopilot pause ${STORE} --reason TEXT [--actor NAME] [--json]`,
  summary: 'Pause the autopilot: it keeps deciding and logging, and writes nothing until resumed',
  examples: ['cellctl autopilot pause --etcd 127.0.0.1:2379 --reason "maintenance of sh-a"'],
  options: { reason: { type: 'string' }, actor: { type: 'string' } },
  run: (ctx) => setFlag(ctx, true),
};

export const autopilotResumeCommand: Command = {
  words: ['autopilot', 'resume'], usage: `cellctl autopilot resume ${STORE} [--json]`,
  summary: 'Resume the autopilot (remove the pause flag)',
  examples: ['cellctl autopilot resume --etcd 127.0.0.1:2379'],
  options: { actor: { type: 'string' } },
  run: (ctx) => setFlag(ctx, false),
};

export const autopilotStatusCommand: Command = {
  words: ['autopilot', 'status'], usage: `cellctl autopilot status ${STORE} [--json]`,
  summary: 'Whether the autopilot is paused, and which replica leads',
  examples: ['cellctl autopilot status --etcd 127.0.0.1:2379 --json'],
  options: {},
  run: async (ctx) => {
    const control = new AutopilotControl(etcdOf(ctx.store()));
    const [state, leader] = await Promise.all([control.pauseState(), control.leader()]);
    if (ctx.out.json) ctx.out.data({ ...state, leader });
    else ctx.out.text(`autopilot: ${state.paused ? `paused by ${state.actor ?? '?'} at ${state.at ?? '?'} (${state.reason ?? ''})` : 'running'}; leader: ${leader ?? 'none'}`);
    return 0;
  },
};

export const AUTOPILOT_COMMANDS: readonly Command[] = [autopilotPauseCommand, autopilotResumeCommand, autopilotStatusCommand];
