// `npm run bench`: runs the benchmark sections in order and prints one readable report.
//   node dist/bench/run.js [SECTION…] [--json]
// A section is a module exporting `run(report)`; add new ones to SECTIONS.
import { Report } from './report';
import * as endpointSpread from './endpoint-spread';
import * as failover from './failover';
import * as gateway from './gateway';
import * as probeCost from './probe-cost';
import * as probeGateway from './probe-gateway';
import * as registry from './registry';
import * as registryLoad from './registry-load';
import * as ring from './ring';
import * as scale from './scale';
import * as scaleFloor from './scale-floor';

interface Section {
  readonly name: string;
  run(report: Report): Promise<void>;
  /** Runs only when named. */
  readonly explicit?: boolean;
}

const SECTIONS: readonly Section[] = [
  { name: 'ring', run: ring.run },
  { name: 'gateway', run: gateway.run },
  { name: 'failover', run: failover.run },
  // Not in the default run (it starts hundreds of simulated gateways): `npm run bench scale -- --gateways N`.
  { name: 'scale', run: (report) => scale.run(report), explicit: true },
  // `npm run bench registry -- --gateways N --endpoints E --changes K` (issue 14).
  { name: 'registry', run: (report) => registry.run(report), explicit: true },
  // What the etcd client alone costs per gateway per version (the floor under `scale`).
  { name: 'scale-floor', run: (report) => scaleFloor.run(report), explicit: true },
  { name: 'registry-load', run: (report) => registryLoad.run(report), explicit: true },
  // The reference for registry-load: what 532 origins instead of 32 cost nginx and raw node+undici.
  { name: 'endpoint-spread', run: (report) => endpointSpread.run(report), explicit: true },
  // What active probes cost per endpoint, idle (the prober alone, 532 endpoints on one nginx).
  { name: 'probe-cost', run: (report) => probeCost.run(report), explicit: true },
  // The same in a real gateway: one probing every second against one that does not (P − Q).
  { name: 'probe-gateway', run: (report) => probeGateway.run(report), explicit: true },
];

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  // Section names; a flag's value (`--gateways 50`) is not one. Only --json takes none.
  const wanted = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1]!.startsWith('--') && argv[i - 1] !== '--json'));
  const unknown = wanted.filter((w) => !SECTIONS.some((s) => s.name === w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown section(s) ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const report = new Report(json ? () => undefined : undefined);
  if (!json) process.stdout.write(`cellgate benchmarks — node ${process.version}, ${new Date().toISOString()}\n`);
  for (const section of SECTIONS) {
    if (wanted.length > 0 ? !wanted.includes(section.name) : section.explicit) continue;
    await section.run(report);
  }
  const failures = report.failures();
  if (json) process.stdout.write(`${JSON.stringify({ results: report.results }, null, 2)}\n`);
  else process.stdout.write(`\n${failures.length === 0 ? 'every bar met' : `bars not met: ${failures.map((f) => f.name).join('; ')}`}\n`);
  // Figures below their bar are reported, not fatal: shared machines are noisy.
  return 0;
}

// Exits once the report is out: a closed etcd3 client can leave grpc-js timers behind that
// would hold the process for minutes after its last section.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exitCode = 1; },
);
