// A small valid routing table for tests, built the way an operator builds one: from the
// topology YAML of DESIGN.md §3.
import { tableFromTopologyText } from '../../src/cells/topology';
import type { RoutingTable } from '../../src/cells/types';

export const demoTopologyYaml = `name: demo
cells: 64
global: sh-a
zones:
  - { name: sh-a, region: east, city: shanghai, capacity: 100, upstreams: ["http://127.0.0.1:7001"] }
  - { name: sh-b, region: east, city: shanghai, capacity: 100, upstreams: ["http://127.0.0.1:7002"] }
  - { name: hz-a, region: east, city: hangzhou, capacity: 100, upstreams: ["http://127.0.0.1:7003"] }
  - { name: sz-a, region: south, city: shenzhen, capacity: 100, upstreams: ["http://127.0.0.1:7004"] }
overrides: { "vip-0001": c07 }
`;

let demo: RoutingTable | undefined;

/**
 * The demo table (deep-frozen, so sharing one is safe). Built once per process: building
 * it balances the ring, ~150 ms of CPU that would stall every concurrent test's event loop.
 */
export function demoTable(): RoutingTable {
  demo ??= tableFromTopologyText(demoTopologyYaml);
  return demo;
}

/**
 * A valid variant of `table` that differs from it: the first cell's epoch raised by `n`.
 * Stores do not care what changed, only that the document is valid and different.
 */
export function bumpedTable(table: RoutingTable, n = 1): RoutingTable {
  const copy = structuredClone(table) as unknown as { cells: { epoch: number }[] };
  copy.cells[0]!.epoch += n;
  return copy as unknown as RoutingTable;
}

/** Two zones of one city, four cells: the smallest table the chaos invariants' tests judge runs against. */
export const twoZoneTopologyYaml = `name: t
cells: 4
global: sh-a
zones:
  - { name: sh-a, region: east, city: shanghai, capacity: 10, upstreams: ["http://127.0.0.1:1"] }
  - { name: sh-b, region: east, city: shanghai, capacity: 10, upstreams: ["http://127.0.0.1:2"] }
`;
