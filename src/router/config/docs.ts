// docs/configuration.md, generated from the schema (`npm run docs:config`); a test fails when
// the file in the repository differs from what this renders.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { envKeys } from './env';
import { CROSS_FIELD_RULES } from './rules';
import { GatewayConfigSchema } from './schema';

interface Node {
  readonly type?: string;
  readonly anyOf?: readonly Node[];
  readonly const?: unknown;
  readonly properties?: Readonly<Record<string, Node>>;
  readonly items?: Node;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly pattern?: string;
  readonly minLength?: number;
  readonly default?: unknown;
  readonly docDefault?: string;
  readonly description?: string;
  readonly secret?: boolean;
}

const HEAD = `# Gateway configuration

<!-- Generated from src/router/config/schema.ts by \`npm run docs:config\`; do not edit by hand. -->

\`cellgate serve --config FILE\` reads YAML (or JSON, by the \`.json\` extension). Every key is
optional. Where a key's value comes from, the first that has it wins:

1. a command-line flag (\`--port\`, \`--admin-port\`, \`--host\`, \`--admin-host\`, \`--zone\`, \`--id\`, \`--store\`, \`--prefix\`);
2. its environment variable (below): \`CELLGATE_\` and the key's path in upper snake case
   (\`upstream.requestTimeoutMs\` → \`CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS\`). Integers and booleans
   (\`true\`/\`false\`/\`1\`/\`0\`) are converted, lists are JSON (a list of strings may also be
   \`a,b,c\`), \`null\` sets a nullable key to null, an empty variable counts as unset;
3. the file;
4. the default.

Every problem is reported at once with the path of its key (\`INVALID_CONFIG\`, exit 3), unknown
keys with the nearest known one ("did you mean"); a value from the environment is named with its
variable. \`cellgate serve --check\` validates a configuration (and reads the TLS files), prints the
effective configuration (secrets as \`<redacted>\`) and exits 0, or 3, without listening; it warns
about \`CELLGATE_*\` variables that set nothing (with the nearest real one).
[\`config/gateway.yaml\`](../config/gateway.yaml) shows every key with its default.
`;

const LOGS = `
## Logs

JSON lines on stderr (pino, written asynchronously): \`level\` (\`fatal\` … \`trace\`), \`time\` (ISO 8601),
\`pid\`, \`hostname\`, \`component\` (\`table\`, \`store\`, \`presence\`, \`lifecycle\`, \`freeze\`, \`proxy\`,
\`upstream\`, \`tls\`, \`access\`) and \`event\` (\`table.applied\`, \`store.connection\`, \`upstream.ejected\`
(warn: origin, why, failures, for how long), \`tls.reloaded\`…). Lines below
\`logLevel\` are not written.

With \`accessLog: true\`, one line per request (\`component: access\`, level \`info\` whatever \`logLevel\`
says) when its response closes: \`requestId\`, \`method\`, \`path\`, \`status\` (499: the client went
away first; 101: a WebSocket), \`class\`, \`zone\` (\`none\` when not routed), \`service\` (the route's; \`none\` when no route matched), \`cell\`, \`upstream\`
(the endpoint's origin), \`durationMs\`, \`user\`. The user id is never written: \`user\` is the first
16 hex digits of HMAC-SHA256(\`accessLogUserKey\`, user id) — with no key, a random one per
process (and per worker), so hashes match only within one process. The query string is left out
and a \`path\` user-id source's segment is written \`:user\`. \`requestId\` is the client's
\`x-request-id\` when it is 1-128 printable ASCII characters without spaces, else a new UUID; it is
sent upstream as \`x-request-id\` (with the access log off the header passes untouched). With the
access log on, lines are gathered up to 4 KiB before a write (and written at least every second,
and at shutdown), so a busy gateway makes one write per ~16 requests.
`;

/**
 * The flags of `cellgate presence-relay` (it has no config file). Kept by hand here: src/router
 * may not import the CLI's flag table; test/cli-presence-relay.test.ts checks the two agree.
 */
const PRESENCE_RELAY = `## cellgate presence-relay

The presence relay (docs/operations.md, "Presence relay") takes flags only, no configuration file:

| flag | default | meaning |
| --- | --- | --- |
| \`--store etcd:HOST:PORT[,…]\` | (required; or \`CELLGATE_STORE\`) | the etcd cluster (a \`file:\` store is refused: exit 2) |
| \`--prefix P\` | \`/cellgate\` | etcd key prefix; records go under \`P/gateways-relayed/\` |
| \`--listen HOST:PORT\` | (required) | where gateways send their records (\`[ADDR]:PORT\` for IPv6); a private address |
| \`--id NAME\` | hostname-pid | the relay's id, in the \`relay\` field of each record it writes |
| \`--ttl S\` | \`10\` | its etcd lease (1-3600): records of a dead relay are gone this long after its last keep-alive |
| \`--max-gateways N\` | \`20000\` | the most gateways it holds; a new one beyond gets 503 \`RELAY_FULL\` |
| \`--token-file PATH\` | no token | a file holding the bearer token every request must carry |
| \`--etcd-cacert\`, \`--etcd-cert\`, \`--etcd-key\`, \`--etcd-user\` | | etcd TLS and user, as for \`cellgate serve\` (and \`CELLGATE_ETCD_*\`) |

Bad flags exit 2 with one line; etcd unreachable at start exits 1.
`;

/** The whole page. */
export function renderConfigDocs(schema: TSchema = GatewayConfigSchema): string {
  const envOf = new Map(envKeys(schema).map((k) => [k.path.join('.'), k.name]));
  const rows: string[] = [];
  const walk = (node: Node, path: string[]): void => {
    const dotted = path.join('.');
    const env = envOf.get(dotted);
    if (env === undefined && node.properties) {
      if (path.length > 0) rows.push(row(dotted, 'object', '', '', node.description ?? ''));
      for (const [k, child] of Object.entries(node.properties)) walk(child, [...path, k]);
      return;
    }
    const object = node.anyOf?.find((b) => b.type === 'object' && b.properties);
    if (env === undefined && object) {
      rows.push(row(dotted, `${typeOf(node)}`, defaultOf(node), '', node.description ?? ''));
      for (const [k, child] of Object.entries(object.properties!)) walk(child, [...path, k]);
      return;
    }
    rows.push(row(dotted, typeOf(node), defaultOf(node), env ?? '', node.description ?? ''));
  };
  walk(schema as Node, []);
  return [
    HEAD,
    '## Keys\n',
    '| key | type | default | environment | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '\n## Rules between keys\n',
    ...CROSS_FIELD_RULES.map((r) => `- ${r.text}`),
    LOGS,
    PRESENCE_RELAY,
  ].join('\n');
}

function row(key: string, type: string, dflt: string, env: string, description: string): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return `| \`${key}\` | ${cell(type)} | ${cell(dflt)} | ${env ? `\`${env}\`` : ''} | ${cell(description)} |`;
}

function typeOf(node: Node): string {
  if (node.anyOf) {
    const literals = node.anyOf.filter((b) => b.const !== undefined);
    if (literals.length === node.anyOf.length) return literals.map((b) => `\`${String(b.const)}\``).join(' / ');
    return node.anyOf.map((b) => (b.type === 'object' ? `{${Object.keys(b.properties ?? {}).join(', ')}}` : typeOf(b))).join(' or ');
  }
  switch (node.type) {
    case 'integer':
      return `integer ${node.minimum ?? ''}…${node.maximum ?? ''}`;
    case 'string':
      return node.pattern ? `string (\`${node.pattern}\`)` : node.minLength && node.minLength > 1 ? `string (≥ ${node.minLength} chars)` : 'string';
    case 'array':
      return `list of ${node.items ? typeOf(node.items) : 'values'}`;
    case 'object':
      return `{${Object.keys(node.properties ?? {}).join(', ')}}`;
    default:
      return node.type ?? 'value';
  }
}

function defaultOf(node: Node): string {
  if (node.docDefault !== undefined) return node.docDefault;
  if (node.default === undefined) return '';
  return `\`${JSON.stringify(node.default)}\``;
}

/** Where the page lives in the repository (this file runs from dist/src/router/config). */
export const CONFIG_DOCS_PATH = join(__dirname, '..', '..', '..', '..', 'docs', 'configuration.md');

if (require.main === module) {
  writeFileSync(CONFIG_DOCS_PATH, renderConfigDocs());
  process.stdout.write(`wrote ${CONFIG_DOCS_PATH}\n`);
}
