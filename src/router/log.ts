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

export type Component = 'table' | 'store' | 'presence' | 'lifecycle' | 'freeze' | 'proxy' | 'upstream' | 'tls' | 'access';

/** Lines gathered before one write when the access log is on (one syscall per ~16 lines, not per line). */
const BUFFERED_BYTES = 4096;
/** A buffered destination is written at least this often, however quiet the gateway. */
const BUFFERED_FLUSH_MS = 1000;

/** The gateway's logger and how to stop it (flushes what is buffered). */
export interface LogSink {
  readonly logger: Logger;
  close(): Promise<void>;
}

/**
 * A root logger at `level` writing to `destination`, or to stderr asynchronously (pino flushes
 * it at exit). `buffered` (the access log is on): lines are gathered up to 4 KiB, written at
 * least every second, so a busy gateway makes one write per ~16 requests.
 */
export function createLogSink(level: LogLevel, destination: DestinationStream | undefined, buffered: boolean): LogSink {
  const options = {
    level,
    base: { pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (destination) {
    const logger = pino(options, destination);
    return { logger, close: () => flushLogger(logger) };
  }
  const stderr = pino.destination({ dest: 2, sync: false, minLength: buffered ? BUFFERED_BYTES : 0 });
  const logger = pino(options, stderr);
  const timer = buffered ? setInterval(() => flushQuietly(stderr), BUFFERED_FLUSH_MS).unref() : null;
  return {
    logger,
    close: () => {
      if (timer) clearInterval(timer);
      return flushLogger(logger);
    },
  };
}

function flushQuietly(stream: { flush(cb?: (err?: Error) => void): void }): void {
  try {
    stream.flush(() => undefined);
  } catch {
    // destroyed: nothing left to write
  }
}

/** Events at warn: something failed or was refused, the gateway carries on. */
function levelOf(event: string, fields: Record<string, unknown> | undefined): Level {
  if (/(_failed|_unusable|\.rejected|_cut|\.ejected)$/.test(event)) return 'warn';
  if (event === 'store.connection' && fields?.connected === false) return 'warn';
  return 'info';
}

/** The `(event, fields)` interface of a component, as lines of `logger` ({"event": …, …fields}). */
export function eventLog(logger: Logger): GatewayLog {
  return (event, fields) => logger[levelOf(event, fields)]({ event, ...fields });
}

/** Resolves once what was logged so far is handed to the destination's writes. */
function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
