// `cellgate autopilot`: one autopilot replica (src/autopilot). Flags in seconds like the
// issue's; pino JSON logs on stderr; the admin port as the gateway's (loopback by default).
import { hostname } from 'node:os';
import pino from 'pino';
import { startAutopilotAdmin } from '../autopilot/admin';
import { AutopilotRunner } from '../autopilot/runner';
import { cgError } from '../errors';
import { decimal, openWithSecurity, stringOption, type Parsed } from './args';

function num(values: Parsed['values'], name: string, min: number, max: number, dflt: number): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return dflt;
  const n = decimal(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw cgError('USAGE', `--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return n;
}

/** Starts the replica; resolves with its stop function once the admin port listens. */
export async function runAutopilot(values: Parsed['values'], positionals: readonly string[]): Promise<() => Promise<void>> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate autopilot --help)`);
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', 'no store: give --store etcd:HOST:PORT (or set CELLGATE_STORE)');
  if (spec.startsWith('file:')) throw cgError('USAGE', 'the autopilot needs etcd (its leader election and pause flag live there); a file store serves one host only');
  const settings = {
    downAfterMs: num(values, 'down-after', 0.1, 3600, 5) * 1000,
    cooldownMs: num(values, 'cooldown', 0, 86_400, 60) * 1000,
    maxDownShare: num(values, 'max-down-share', 0, 1, 0.34),
    upAfterMs: num(values, 'up-after', 1, 86_400, 120) * 1000,
    dryRun: values['dry-run'] === true,
    autoFailback: values['auto-failback'] === true,
  };
  const adminPort = num(values, 'admin-port', 0, 65535, 9190);
  if (!Number.isInteger(adminPort)) throw cgError('USAGE', '--admin-port must be an integer');
  const leaseTtlSeconds = num(values, 'lease-ttl', 1, 600, 5);
  const id = stringOption(values, 'id') ?? `autopilot-${hostname()}-${process.pid}`;
  const level = stringOption(values, 'log-level') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw cgError('USAGE', `--log-level: unknown level "${level}"`);
  const log = pino({ level, base: { pid: process.pid, hostname: hostname(), component: 'autopilot', id }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
  const store = openWithSecurity(spec, stringOption(values, 'prefix'), values);
  const runner = new AutopilotRunner({ store, id, settings, log, leaseTtlSeconds: Math.round(leaseTtlSeconds) });
  let admin: Awaited<ReturnType<typeof startAutopilotAdmin>> | null = null;
  try {
    await runner.start();
    admin = await startAutopilotAdmin(runner, adminPort, stringOption(values, 'admin-host') ?? '127.0.0.1');
  } catch (err) {
    await runner.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  log.info({ event: 'listening', admin: admin.url, settings }, 'autopilot started');
  return async () => {
    await admin?.close();
    await runner.close();
    await store.close();
  };
}
