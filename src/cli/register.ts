// `cellgate register`: the endpoint registry sidecar. It registers one instance (zone,
// service, URL) under a lease kept alive while the instance's local check passes, withdraws
// it when the check fails (and registers it again when it passes), and withdraws it at once
// on SIGTERM/SIGINT. Logs JSON lines with pino, like serve. An id held by another live
// instance fails the start (ENDPOINT_TAKEN, exit 3); an id taken later (while the lease was
// lost) stops the sidecar the same way, so that its supervisor sees it.
import { cgError } from '../errors';
import { DEFAULT_CHECK_INTERVAL_MS, registerEndpoint, type EndpointHandle } from '../registry';
import { createLogSink, eventLog } from '../router/log';
import { MAX_ENDPOINT_TTL_MS, MIN_ENDPOINT_TTL_MS } from '../store/endpoint-record';
import { NO_STORE, intFlag, openWithSecurity, stringOption, type Parsed } from './args';
import { reportError } from './output';

function required(values: Parsed['values'], name: string): string {
  const v = stringOption(values, name);
  if (v === undefined || v.trim() === '') throw cgError('USAGE', `cellgate register needs --${name} (see cellgate register --help)`);
  return v;
}

/** Seconds (fractions allowed) as whole ms, within [minMs, maxMs]. */
function secondsFlag(values: Parsed['values'], name: string, minMs: number, maxMs: number): number | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  const ms = Math.round(Number(raw) * 1000);
  if (raw.trim() === '' || !Number.isFinite(ms) || ms < minMs || ms > maxMs) {
    throw cgError('USAGE', `--${name} must be a number of seconds in [${minMs / 1000}, ${maxMs / 1000}], got "${raw}"`);
  }
  return ms;
}

export async function register(values: Parsed['values'], positionals: readonly string[]): Promise<() => Promise<void>> {
  if (positionals.length > 0) throw cgError('USAGE', `cellgate register takes no arguments, got "${positionals.join(' ')}"`);
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', NO_STORE.replace(' (or `store:` / `etcd.endpoints` in the config, or set CELLGATE_STORE)', ' (or set CELLGATE_STORE)'));
  const zone = required(values, 'zone');
  const service = required(values, 'service');
  const url = required(values, 'url');
  const weight = intFlag(values, 'weight', 1, 100);
  const ttlMs = secondsFlag(values, 'ttl', MIN_ENDPOINT_TTL_MS, MAX_ENDPOINT_TTL_MS);
  const checkIntervalMs = secondsFlag(values, 'check-interval', 100, 3_600_000) ?? DEFAULT_CHECK_INTERVAL_MS;
  const checkPath = stringOption(values, 'check-path');
  const id = stringOption(values, 'id');
  const store = openWithSecurity(spec, stringOption(values, 'prefix'), values);
  const sink = createLogSink('info', undefined, false);
  const log = eventLog(sink.logger.child({ component: 'register' }));
  let handle: EndpointHandle | undefined;
  let stopping: Promise<void> | null = null;
  const onTaken = (err: Error) => {
    if (!handle) return; // refused at the start: registerEndpoint throws it
    // Not fought over: say so in one line and exit non-zero (3, refused).
    const code = reportError(err, false, 'cellgate');
    stopping ??= stop();
    void stopping.finally(() => process.exit(code));
  };
  try {
    handle = await registerEndpoint({ store, zone, service, url, id, weight, ttlMs, checkPath, checkIntervalMs, log, onTaken });
  } catch (err) {
    await store.close().catch(() => undefined);
    await sink.close();
    throw err;
  }
  log('register.started', { store: store.description, zone, service, url, id: handle.id, state: handle.state, checkPath: checkPath ?? null, checkIntervalMs });
  const h = handle;
  async function stop(): Promise<void> {
    await h.close();
    log('register.stopped', { id: h.id });
    await store.close();
    await sink.close();
  }
  return () => (stopping ??= stop());
}
