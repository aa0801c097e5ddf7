// `npm run bench`: runs the benchmark sections in order and prints one readable report.
//   node dist/bench/run.js [SECTION…] [--json]
// A section is a module exporting `run(report)`; add new ones to SECTIONS.
import { Report } from './report';
import * as failover from './failover';
import * as gateway from './gateway';
import * as ring from './ring';

interface Section {
  readonly name: string;
  run(report: Report): Promise<void>;
}

const SECTIONS: readonly Section[] = [
  { name: 'ring', run: ring.run },
  { name: 'gateway', run: gateway.run },
  { name: 'failover', run: failover.run },
];

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const wanted = argv.filter((a) => !a.startsWith('--'));
  const unknown = wanted.filter((w) => !SECTIONS.some((s) => s.name === w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown section(s) ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const report = new Report(json ? () => undefined : undefined);
  if (!json) process.stdout.write(`cellgate benchmarks — node ${process.version}, ${new Date().toISOString()}\n`);
  for (const section of SECTIONS) {
    if (wanted.length > 0 && !wanted.includes(section.name)) continue;
    await section.run(report);
  }
  const failures = report.failures();
  if (json) process.stdout.write(`${JSON.stringify({ results: report.results }, null, 2)}\n`);
  else process.stdout.write(`\n${failures.length === 0 ? 'every bar met' : `bars not met: ${failures.map((f) => f.name).join('; ')}`}\n`);
  // Figures below their bar are reported, not fatal: shared machines are noisy.
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exitCode = 1; },
);
