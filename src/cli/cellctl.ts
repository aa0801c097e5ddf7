#!/usr/bin/env node
// cellctl: the ops CLI. A thin shell: find the command (its words may come after store and
// output flags, as in kubectl and etcdctl), parse its flags, run it, map errors to the
// contract's exit codes (0 done, 1 error, 2 usage, 3 refused, 4 not converged).
import { parseArgs } from 'node:util';
import { cgError } from '../errors';
import type { TableStore } from '../store/types';
import { COMMON_OPTIONS, STORE_OPTIONS, etcdSecurityFromFlags, parseCommandArgs, storeFromFlags, type OptionSpec, type Parsed } from './args';
import type { Command } from './command';
import {
  cellMoveCommand, regionDownCommand, regionUpCommand, rollbackCommand, zoneDownCommand, zoneDrainCommand, zoneUpCommand,
} from './commands/failover';
import { endpointsCommand } from './commands/endpoints';
import { historyCommand } from './commands/history';
import { initCommand } from './commands/init';
import { rebalanceCommand } from './commands/rebalance';
import { zoneAddCommand, zoneRemoveCommand } from './commands/zone-edit';
import { routeCommand } from './commands/route';
import { statusCommand } from './commands/status';
import { validateCommand } from './commands/validate';
import { closest, flagLines } from './flags';
import { escapeForTerminal as esc, makeOutput, reportError } from './output';
import { promptPassword } from './password-prompt';
import { quietIpServernameWarning } from './quiet-warnings';
import { versionText } from './version';
import { AUTOPILOT_COMMANDS } from './autopilot-ctl';

export const COMMANDS: readonly Command[] = [
  initCommand, validateCommand, statusCommand, routeCommand, endpointsCommand,
  zoneDownCommand, zoneDrainCommand, zoneUpCommand, cellMoveCommand, regionDownCommand, regionUpCommand,
  historyCommand, rollbackCommand, ...AUTOPILOT_COMMANDS, zoneAddCommand, zoneRemoveCommand, rebalanceCommand,
];

const OUTPUT_FLAGS = ['json', 'yes', 'help', 'version'];

const GLOBAL_HELP = `cellctl — operate cellgate's routing table

Usage: cellctl [FLAGS] COMMAND [ARGS] [FLAGS]   (flags go before or after the command)

Exit codes: 0 done, 1 error, 2 usage, 3 refused (conflict, no capacity, invalid), 4 not converged
`;

function commandList(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.words.join(' ').length));
  return commands.map((c) => `  ${c.words.join(' ').padEnd(width)}  ${c.summary}`).join('\n');
}

function globalHelp(): string {
  return `${GLOBAL_HELP}
Commands:
${commandList(COMMANDS)}

Store flags (every command but validate):
${flagLines(Object.keys(STORE_OPTIONS)).join('\n')}

Output flags:
${flagLines(OUTPUT_FLAGS).join('\n')}

Run \`cellctl COMMAND --help\` for a command's flags and examples.
`;
}

function groupHelp(group: string, commands: readonly Command[]): string {
  return `cellctl ${group} — ${commands.map((c) => c.words[1]).join(', ')}\n\nCommands:\n${commandList(commands)}\n\nRun \`cellctl ${group} COMMAND --help\` for a command's flags and examples.\n`;
}

function commandHelp(c: Command): string {
  const own = Object.keys(c.options);
  const store = c.words[0] === 'validate' ? [] : Object.keys(STORE_OPTIONS);
  return [
    `Usage: ${c.usage}`, '', c.summary, '',
    ...(own.length ? ['Flags:', ...flagLines(own), ''] : []),
    ...(store.length ? ['Store flags:', ...flagLines(store), ''] : []),
    'Output flags:', ...flagLines(OUTPUT_FLAGS), '',
    'Examples:', ...c.examples.map((e) => `  ${e}`), '',
  ].join('\n');
}

/** Every option any command takes: a loose parse with it knows which words are flag values. */
const ALL_OPTIONS: OptionSpec = Object.assign({}, COMMON_OPTIONS, ...COMMANDS.map((c) => c.options));

interface Located {
  /** Words that are not flags nor flag values, with their index in argv. */
  readonly words: { word: string; index: number }[];
  readonly help: boolean;
  readonly version: boolean;
  readonly json: boolean;
}

function locate(argv: readonly string[]): Located {
  const { values, tokens } = parseArgs({ args: [...argv], options: ALL_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const words = tokens.flatMap((t) => (t.kind === 'positional' ? [{ word: t.value, index: t.index }] : []));
  return { words, help: values.help === true, version: values.version === true, json: values.json === true };
}

/** The command whose words start the positional words (longest match first). */
function findCommand(words: readonly string[]): Command | null {
  const sorted = [...COMMANDS].sort((a, b) => b.words.length - a.words.length);
  return sorted.find((c) => c.words.every((w, i) => words[i] === w)) ?? null;
}

function unknownCommand(words: readonly string[]): Error {
  const group = COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === words[0]);
  if (group.length) {
    const sub = words[1];
    if (sub === undefined) return cgError('USAGE', `cellctl ${words[0]} needs a command: ${group.map((c) => c.words[1]).join(', ')} (see cellctl ${words[0]} --help)`);
    const near = closest(sub, group.map((c) => c.words[1]!));
    return cgError('USAGE', `unknown command "${words[0]} ${sub}"${near ? `: did you mean "${words[0]} ${near}"?` : ''} (see cellctl ${words[0]} --help)`);
  }
  const typed = words.slice(0, 2).join(' ');
  const names = COMMANDS.map((c) => c.words.join(' '));
  const near = closest(typed, names) ?? closest(words[0] ?? '', [...new Set(COMMANDS.map((c) => c.words[0]!))]);
  return cgError('USAGE', `unknown command "${typed}"${near ? `: did you mean "${near}"?` : ''} (see cellctl --help)`);
}

/**
 * On a terminal, an etcd user given without a password (no NAME:PASSWORD, no
 * CELLGATE_ETCD_PASSWORD) is asked for one, not echoed; off a terminal that is an error.
 */
async function withPromptedPassword(values: Parsed['values'], env: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  const etcd = values.etcd !== undefined || (values.file === undefined && Boolean(env.CELLGATE_ETCD));
  if (!etcd || !process.stdin.isTTY) return env;
  const { user, password } = etcdSecurityFromFlags(values, env);
  if (user === undefined || password !== undefined) return env;
  return { ...env, CELLGATE_ETCD_PASSWORD: await promptPassword(`Password for etcd user ${esc(user)}: `) };
}

export async function main(argv: readonly string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  let json = false;
  let opened = null as TableStore | null;
  try {
    const where = locate(argv);
    json = where.json;
    const words = where.words.map((w) => w.word);
    if (where.version) {
      process.stdout.write(versionText('cellctl'));
      return 0;
    }
    if (words[0] === 'help') {
      // `cellctl help zone down` is `cellctl zone down --help`.
      return main([...words.slice(1), '--help'], stdin);
    }
    const command = findCommand(words);
    if (!command) {
      if (words.length === 0) {
        process.stdout.write(globalHelp());
        return where.help ? 0 : 2;
      }
      const group = COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === words[0]);
      if (group.length && where.help) {
        process.stdout.write(groupHelp(words[0]!, group));
        return 0;
      }
      throw unknownCommand(words);
    }
    // --help never runs anything, and never fails on the other flags.
    if (where.help) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    const commandIndexes = new Set(where.words.slice(0, command.words.length).map((w) => w.index));
    const rest = argv.filter((_, i) => !commandIndexes.has(i));
    const args = parseCommandArgs(rest, command.options, `cellctl ${command.words.join(' ')}`);
    const out = makeOutput(json);
    const env = command.words[0] === 'validate' ? process.env : await withPromptedPassword(args.values);
    return await command.run({
      args, out, stdin,
      store: () => (opened ??= storeFromFlags(args.values, env)),
    });
  } catch (err) {
    return reportError(err, json, 'cellctl');
  } finally {
    await opened?.close().catch(() => undefined);
  }
}

if (require.main === module) {
  quietIpServernameWarning();
  main(process.argv.slice(2)).then((code) => {
    // Exit once stdout has drained: piped output must not be cut off.
    process.stdout.write('', () => process.exit(code));
  });
}
