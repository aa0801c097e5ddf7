// The shape of a cellctl command: a thin shell that parses flags, calls the model, the store
// or the failover engine, and prints. Commands return the exit code.
import type { OptionSpec, Parsed } from './args';
import type { Output } from './output';
import type { TableStore } from '../store/types';

export interface CommandContext {
  readonly args: Parsed;
  readonly out: Output;
  /** Opens the store named by the flags (closed by the runner after the command). */
  store(): TableStore;
  readonly stdin: NodeJS.ReadableStream;
}

export interface Command {
  /** Words that select the command, e.g. ['zone', 'down']. */
  readonly words: readonly string[];
  readonly usage: string;
  readonly summary: string;
  readonly examples: readonly string[];
  readonly options: OptionSpec;
  run(ctx: CommandContext): Promise<number>;
}
