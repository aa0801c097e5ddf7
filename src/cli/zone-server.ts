// `cellgate zone-server`: one demo zone server (used by the demo and the chaos harness).
import { cgError } from '../errors';
import { startDemoZone } from '../router/demo-zone';
import { NO_STORE, intFlag, openWithSecurity, stringOption, type Parsed } from './args';
import { logLine, onSignals } from './process-life';

export async function zoneServer(values: Parsed['values'], positionals: readonly string[]): Promise<void> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate zone-server --help)`);
  const zone = stringOption(values, 'zone');
  if (!zone) throw cgError('USAGE', 'zone-server needs --zone ZONE');
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', NO_STORE);
  const store = openWithSecurity(spec, stringOption(values, 'prefix'), values);
  const server = await startDemoZone({
    zone, store, port: intFlag(values, 'port', 0, 65535) ?? 0, host: stringOption(values, 'host'), enforce: values['no-enforce'] !== true,
  });
  onSignals(async () => {
    await server.close();
    await store.close();
  });
  logLine({ event: 'listening', zone, url: server.url });
}
