// The topology the gateway and failover benchmarks route over: 4 zones (two of them a
// same-city pair, a second city in the same region, another region), 64 cells, every zone
// served by the same upstream process — a zone lists it once; zones may share it.
export function benchTopology(name: string, upstream: string): string {
  const zones = [['sh-a', 'east', 'shanghai'], ['sh-b', 'east', 'shanghai'], ['hz-a', 'east', 'hangzhou'], ['sz-a', 'south', 'shenzhen']]
    .map(([zone, region, city]) => `  - { name: ${zone}, region: ${region}, city: ${city}, capacity: 100, upstreams: ["${upstream}"] }`);
  return `name: ${name}\ncells: 64\nglobal: sh-a\nzones:\n${zones.join('\n')}\n`;
}
