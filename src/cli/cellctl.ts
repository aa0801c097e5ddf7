#!/usr/bin/env node
// cellctl: the ops CLI. A thin shell: find the command, parse its flags, run it, map errors
// to the contract's exit codes (0 done, 1 error, 2 usage, 3 refused, 4 not converged).
import { cgError } from '../errors';
import type { TableStore } from '../store/types';
import { parseCommandArgs, storeFromFlags } from './args';
import type { Command } from './command';
import {
  cellMoveCommand, regionDownCommand, regionUpCommand, rollbackCommand, zoneDownCommand, zoneDrainCommand, zoneUpCommand,
} from './commands/failover';
import { historyCommand } from './commands/history';
import { initCommand } from './commands/init';
import { routeCommand } from './commands/route';
import { statusCommand } from './commands/status';
import { validateCommand } from './commands/validate';
import { makeOutput, reportError } from './output';
import { AUTOPILOT_COMMANDS } from './autopilot-ctl';

export const COMMANDS: readonly Command[] = [
  initCommand, validateCommand, statusCommand, routeCommand,
  zoneDownCommand, zoneDrainCommand, zoneUpCommand, cellMoveCommand, regionDownCommand, regionUpCommand,
  historyCommand, rollbackCommand, ...AUTOPILOT_COMMANDS,
];

const GLOBAL_HELP = `cellctl — operate cellgate's routing table

Store (every command but validate): --file PATH (embedded file store)
  or --etcd HOST:PORT[,…] (env CELLGATE_ETCD) with --prefix P (default /cellgate)
Common flags: --json (machine output), --yes (no confirmation), --help

Exit codes: 0 done, 1 error, 2 usage, 3 refused (conflict, no capacity, invalid), 4 not converged

Commands:
`;

function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.words.join(' ').length));
  return GLOBAL_HELP + COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(width)}  ${c.summary}`).join('\n')
    + '\n\nRun `cellctl COMMAND --help` for a command\'s flags and examples.\n';
}

function commandHelp(c: Command): string {
  return `${c.usage}\n\n${c.summary}\n\nExamples:\n${c.examples.map((e) => `  ${e}`).join('\n')}\n`;
}

/** The command whose words start argv (longest match first). */
function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | null {
  const sorted = [...COMMANDS].sort((a, b) => b.words.length - a.words.length);
  for (const command of sorted) {
    if (command.words.every((w, i) => argv[i] === w)) return { command, rest: argv.slice(command.words.length) };
  }
  return null;
}

export async function main(argv: readonly string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const json = argv.includes('--json');
  let opened = null as TableStore | null;
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      process.stdout.write(globalHelp());
      return argv.length === 0 ? 2 : 0;
    }
    const found = findCommand(argv);
    if (!found) throw cgError('USAGE', `unknown command "${argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}" (see cellctl --help)`);
    const args = parseCommandArgs(found.rest, found.command.options);
    if (args.values.help) {
      process.stdout.write(commandHelp(found.command));
      return 0;
    }
    const out = makeOutput(json);
    return await found.command.run({
      args, out, stdin,
      store: () => (opened ??= storeFromFlags(args.values)),
    });
  } catch (err) {
    return reportError(err, json, 'cellctl');
  } finally {
    await opened?.close().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    // Exit once stdout has drained: piped output must not be cut off.
    process.stdout.write('', () => process.exit(code));
  });
}
