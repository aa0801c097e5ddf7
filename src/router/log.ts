// The gateway's logs: pino JSON lines on stderr (fastify's own logger), written through an
// asynchronous destination (sonic-boom: no synchronous write per line), with `level` as its
// name ("info", "warn"), ISO `time`, and one child logger per component (`component` field).
// The control-plane parts (table follower, presence, lifecycle…) keep their small
// `(event, fields)` interface; eventLog() turns it into lines of their component's logger.
import { hostname } from 'node:os';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import type { LogLevel } from './config';

export type { DestinationStream, Logger } from 'pino';

/** A control-plane event sink: never called per request. */
export type GatewayLog = (event: string, fields?: Record<string, unknown>) => void;

export type Component = 'table' | 'store' | 'presence' | 'lifecycle' | 'freeze' | 'proxy' | 'tls' | 'access';

/** A root logger at `level` writing to `destination` (default: stderr, asynchronously; flushed at exit). */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination ?? pino.destination({ dest: 2, sync: false }));
}

/** Events at warn: something failed or was refused, the gateway carries on. */
function levelOf(event: string, fields: Record<string, unknown> | undefined): Level {
  if (/(_failed|_unusable|\.rejected|_cut)$/.test(event)) return 'warn';
  if (event === 'store.connection' && fields?.connected === false) return 'warn';
  return 'info';
}

/** The `(event, fields)` interface of a component, as lines of `logger` ({"event": …, …fields}). */
export function eventLog(logger: Logger): GatewayLog {
  return (event, fields) => logger[levelOf(event, fields)]({ event, ...fields });
}

/** Resolves once what was logged so far is written. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
