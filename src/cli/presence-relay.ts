// `cellgate presence-relay`: the presence relay of a region (src/relay). Gateways PUT their
// presence record to it; it writes them to etcd in batched transactions on its own lease.
// Logs JSON lines with pino, like serve and register; SIGTERM/SIGINT stop it and revoke its
// lease, which deletes every record it relayed at once.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { cgError } from '../errors';
import { DEFAULT_MAX_GATEWAYS, DEFAULT_RELAY_TTL_SECONDS, startPresenceRelay } from '../relay';
import { createLogSink, eventLog } from '../router/log';
import { parseStoreSpec } from '../store/open';
import { etcdSecurityFromFlags, intFlag, stringOption, type Parsed } from './args';

const WHERE = '(see cellgate presence-relay --help)';

/** HOST:PORT, [IPv6]:PORT. */
export function parseListen(raw: string | undefined): { host: string; port: number } {
  if (raw === undefined || raw.trim() === '') throw cgError('USAGE', `cellgate presence-relay needs --listen HOST:PORT ${WHERE}`);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw cgError('USAGE', `--listen must be HOST:PORT (IPv6: [ADDR]:PORT), got "${raw}"`);
  return { host: m[1] ?? m[2]!, port };
}

function readToken(path: string | undefined): string | null {
  if (path === undefined) return null;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw cgError('USAGE', `cannot read --token-file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) throw cgError('USAGE', `--token-file ${path} must hold one token: non-empty, no spaces`);
  return token;
}

export async function presenceRelay(values: Parsed['values'], positionals: readonly string[]): Promise<() => Promise<void>> {
  if (positionals.length > 0) throw cgError('USAGE', `cellgate presence-relay takes no arguments, got "${positionals.join(' ')}" ${WHERE}`);
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', `no store: give --store etcd:HOST:PORT[,…] (or set CELLGATE_STORE) ${WHERE}`);
  const store = parseStoreSpec(spec);
  if (store.kind !== 'etcd') throw cgError('USAGE', `the presence relay writes to etcd only, not ${spec}: give --store etcd:HOST:PORT[,…]`);
  const { host, port } = parseListen(stringOption(values, 'listen'));
  const id = stringOption(values, 'id') ?? `${hostname()}-${process.pid}`;
  if (id.length === 0 || id.length > 200) throw cgError('USAGE', `--id must be 1-200 characters ${WHERE}`);
  const ttlSeconds = intFlag(values, 'ttl', 1, 3600) ?? DEFAULT_RELAY_TTL_SECONDS;
  const maxGateways = intFlag(values, 'max-gateways', 1, 1_000_000) ?? DEFAULT_MAX_GATEWAYS;
  const token = readToken(stringOption(values, 'token-file'));
  const etcd = {
    endpoints: store.endpoints, prefix: stringOption(values, 'prefix'), security: etcdSecurityFromFlags(values), flagHint: '--store',
  };
  const sink = createLogSink('info', undefined, false);
  const log = eventLog(sink.logger.child({ component: 'relay' }));
  let relay;
  try {
    relay = await startPresenceRelay({ etcd, id, host, port, ttlSeconds, maxGateways, token, log });
  } catch (err) {
    await sink.close();
    throw err;
  }
  log('relay.listening', { url: relay.url, id, store: `etcd:${store.endpoints.join(',')}`, ttlSeconds, maxGateways, token: token !== null });
  const r = relay;
  return async () => {
    await r.close();
    log('relay.stopped', { id, txns: r.stats.txns, ops: r.stats.ops });
    await sink.close();
  };
}
