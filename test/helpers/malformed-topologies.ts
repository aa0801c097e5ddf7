// Malformed topology files, each with one fault and the key path the refusal must name.
// Shared by the model's tests (tableFromTopologyText throws INVALID_TOPOLOGY naming `path`)
// and the CLI's tests (`cellctl init` / `cellctl validate` exit with code 3).

export interface MalformedTopology {
  /** What is wrong, as a test title. */
  readonly name: string;
  readonly yaml: string;
  /** The key path the error message must contain (as `${path}: …`). */
  readonly path: string;
}

const ZONE_A = '{ name: sh-a, region: east, city: shanghai, capacity: 100, upstreams: ["http://127.0.0.1:7001"] }';
const ZONE_B = '{ name: sh-b, region: east, city: shanghai, capacity: 100, upstreams: ["http://127.0.0.1:7002"] }';

interface Parts {
  readonly name?: string | null;
  readonly cells?: string;
  readonly global?: string | null;
  readonly zones?: readonly string[];
  readonly extra?: string;
}

/** A valid two-zone topology with the given parts replaced (null drops a key). */
function topology(parts: Parts = {}): string {
  const lines: string[] = [];
  if (parts.name !== null) lines.push(`name: ${parts.name ?? 'broken'}`);
  lines.push(`cells: ${parts.cells ?? '8'}`);
  if (parts.global !== null) lines.push(`global: ${parts.global ?? 'sh-a'}`);
  lines.push('zones:');
  for (const zone of parts.zones ?? [ZONE_A, ZONE_B]) lines.push(`  - ${zone}`);
  if (parts.extra) lines.push(parts.extra);
  return lines.join('\n') + '\n';
}

/** A zone entry with some fields replaced (`undefined` values drop the key). */
function zone(fields: Record<string, string | undefined>): string {
  const base: Record<string, string | undefined> = {
    name: 'sh-a', region: 'east', city: 'shanghai', capacity: '100', upstreams: '["http://127.0.0.1:7001"]', ...fields,
  };
  const body = Object.entries(base).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `{ ${body} }`;
}

export const MALFORMED_TOPOLOGIES: readonly MalformedTopology[] = Object.freeze([
  { name: 'unknown top-level key', yaml: topology({ extra: 'foo: 1' }), path: 'foo' },
  { name: 'unknown zone key', yaml: topology({ zones: [zone({ colour: 'blue' }), ZONE_B] }), path: 'zones[0].colour' },
  { name: 'duplicate zone name', yaml: topology({ zones: [ZONE_A, zone({ upstreams: '["http://127.0.0.1:7009"]' })] }), path: 'zones[1].name' },
  { name: 'duplicate YAML key', yaml: 'name: a\nname: b\n' + topology({ name: null }), path: '(document)' },
  { name: 'broken YAML', yaml: 'name: [broken\ncells: 8\n', path: '(document)' },
  { name: 'not a mapping', yaml: '- sh-a\n- sh-b\n', path: '(root)' },
  { name: 'empty document', yaml: '', path: '(root)' },
  { name: 'missing name', yaml: topology({ name: null }), path: 'name' },
  { name: 'zero cells', yaml: topology({ cells: '0' }), path: 'cells' },
  { name: 'empty cell list', yaml: topology({ cells: '[]' }), path: 'cells' },
  { name: 'cell list with a duplicate', yaml: topology({ cells: '[a, b, a]' }), path: 'cells[2]' },
  { name: 'reserved cell name global', yaml: topology({ cells: '[a, global, b]' }), path: 'cells[1]' },
  { name: 'global names a missing zone', yaml: topology({ global: 'nowhere' }), path: 'global' },
  { name: 'non-http upstream URL', yaml: topology({ zones: [zone({ upstreams: '["ftp://127.0.0.1:21"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'upstream URL with credentials', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', upstreams: '["http://u:p@127.0.0.1:7002"]' })] }), path: 'zones[1].upstreams[0]' },
  { name: 'duplicate upstream', yaml: topology({ zones: [zone({ upstreams: '["http://127.0.0.1:7001", "http://127.0.0.1:7001"]' }), ZONE_B] }), path: 'zones[0].upstreams[1]' },
  { name: 'upstreams not a list', yaml: topology({ zones: [zone({ upstreams: '"http://127.0.0.1:7001"' }), ZONE_B] }), path: 'zones[0].upstreams' },
  { name: 'services not a map', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '[orders]' })] }), path: 'zones[1].services' },
  { name: 'a service named default', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ default: { upstreams: [] } }' })] }), path: 'zones[1].services.default' },
  { name: 'a service name with a space', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ "or ders": { upstreams: [] } }' })] }), path: 'zones[1].services["or ders"]' },
  { name: 'unknown service key', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ orders: { upstreams: [], weight: 2 } }' })] }), path: 'zones[1].services.orders.weight' },
  {
    name: 'service upstream URL with a path',
    yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ orders: { upstreams: ["http://127.0.0.1:7003/orders"] } }' })] }),
    path: 'zones[1].services.orders.upstreams[0]',
  },
  {
    name: 'link-local service upstream',
    yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ orders: { upstreams: ["http://127.0.0.1:7003", "http://169.254.169.254"] } }' })] }),
    path: 'zones[1].services.orders.upstreams[1]',
  },
  { name: 'service healthPath without a slash', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', services: '{ orders: { upstreams: [], healthPath: healthz } }' })] }), path: 'zones[1].services.orders.healthPath' },
  { name: 'negative capacity', yaml: topology({ zones: [zone({ capacity: '-1' }), ZONE_B] }), path: 'zones[0].capacity' },
  {
    name: 'all-zero capacity',
    yaml: topology({ zones: [zone({ capacity: '0' }), zone({ name: 'sh-b', capacity: '0', upstreams: '["http://127.0.0.1:7002"]' })] }),
    path: 'zones',
  },
  {
    name: 'more cells than the zones can carry',
    yaml: topology({ cells: '12', zones: [zone({ capacity: '5' }), zone({ name: 'sh-b', capacity: '5', upstreams: '["http://127.0.0.1:7002"]' })] }),
    path: 'zones',
  },
  { name: 'no zones', yaml: topology({ zones: [], global: null }), path: 'zones' },
  { name: 'bad zone status', yaml: topology({ zones: [zone({ status: 'sideways' }), ZONE_B] }), path: 'zones[0].status' },
  { name: 'zone name with a space', yaml: topology({ zones: [zone({ name: '"sh a"' }), ZONE_B], global: 'sh-b' }), path: 'zones[0].name' },
  { name: 'override to a missing cell', yaml: topology({ extra: 'overrides: { vip-1: c99 }' }), path: 'overrides["vip-1"]' },
  { name: 'override key with a space to a missing cell', yaml: topology({ extra: 'overrides: { "x y": nope }' }), path: 'overrides["x y"]' },
  { name: 'override with an empty user id', yaml: topology({ extra: 'overrides: { "": c01 }' }), path: 'overrides[""]' },
  { name: 'upstream URL with a path', yaml: topology({ zones: [zone({ upstreams: '["http://127.0.0.1:7001/base"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'upstream URL with an empty query', yaml: topology({ zones: [zone({ upstreams: '["http://127.0.0.1:7001/?"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'upstream URL with a fragment', yaml: topology({ zones: [zone({ upstreams: '["http://127.0.0.1:7001#x"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'upstream URL with a password only', yaml: topology({ zones: [zone({ upstreams: '["http://:pw@127.0.0.1:7001"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'cloud metadata upstream', yaml: topology({ zones: [zone({ upstreams: '["http://169.254.169.254"]' }), ZONE_B] }), path: 'zones[0].upstreams[0]' },
  { name: 'link-local IPv6 upstream', yaml: topology({ zones: [ZONE_A, zone({ name: 'sh-b', upstreams: '["http://[fe80::1]:80"]' })] }), path: 'zones[1].upstreams[0]' },
  { name: 'allowLinkLocal that is not a boolean', yaml: topology({ extra: 'allowLinkLocal: yes please' }), path: 'allowLinkLocal' },
  { name: 'infinite capacity', yaml: topology({ zones: [zone({ capacity: '.inf' }), ZONE_B] }), path: 'zones[0].capacity' },
  { name: 'override user id with a control character', yaml: topology({ extra: 'overrides: { "a\\x1bb": c01 }' }), path: 'overrides["a\\u001bb"]' },
  { name: 'override with a user id over 256 characters', yaml: topology({ extra: `overrides: { ${'u'.repeat(257)}: c01 }` }), path: `overrides.${'u'.repeat(257)}` },
  { name: 'overrides not a map', yaml: topology({ extra: 'overrides: [c01]' }), path: 'overrides' },
]);
