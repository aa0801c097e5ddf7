// The npm package: `npm pack` holds only what runs (compiled dist/src JavaScript, the example
// configuration and the demo topology, README and package.json: no tests, bench, chaos,
// TypeScript sources or source maps), and `npm install -g` of the tarball into a temporary
// prefix (production dependencies from the npm registry) gives working `cellgate` and
// `cellctl`. The build has run already (npm test builds first), so pack skips `prepack`.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './helpers/run';

const ROOT = join(__dirname, '..', '..');

test('npm pack holds only what runs; npm install -g of it gives working cellgate and cellctl', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-pack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pack = await runCommand('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  t.is(pack.code, 0, pack.stderr);
  const [info] = JSON.parse(pack.stdout) as { filename: string; size: number; files: { path: string }[] }[];
  const paths = info!.files.map((f) => f.path);
  t.true(paths.includes('dist/src/cli/cellgate.js') && paths.includes('dist/src/cli/cellctl.js') && paths.includes('dist/src/router/index.js'));
  t.true(paths.includes('config/demo-topology.yaml'), 'cellgate demo reads it');
  const unwanted = paths.filter((p) => !/^(dist\/src\/.*\.js|config\/(gateway|demo-topology)\.yaml|package\.json|README\.md|LICENSE)$/.test(p));
  t.deepEqual(unwanted, [], 'nothing but compiled sources, the example configs, README and package.json');
  t.log(`tarball ${info!.filename}: ${info!.size} bytes, ${paths.length} files`);

  const prefix = join(dir, 'prefix');
  const install = await runCommand('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', join(dir, info!.filename)], { cwd: dir, timeoutMs: 180_000 });
  t.is(install.code, 0, install.stderr);
  const bin = (name: string) => join(prefix, 'bin', name);
  for (const name of ['cellgate', 'cellctl']) {
    const version = await runCommand(bin(name), ['--version'], { cwd: dir });
    t.is(version.code, 0, version.stderr);
    t.regex(version.stdout, new RegExp(`^${name} \\d+\\.\\d+\\.\\d+ \\(node v\\d+`));
    const help = await runCommand(bin(name), ['--help'], { cwd: dir });
    t.is(help.code, 0, help.stderr);
    t.regex(help.stdout, /serve|validate/);
  }
  const installed = join(prefix, 'lib', 'node_modules', 'cellgate');
  const validate = await runCommand(bin('cellctl'), ['validate', join(installed, 'config', 'demo-topology.yaml')], { cwd: dir });
  t.is(validate.code, 0, validate.stderr + validate.stdout);
  const check = await runCommand(bin('cellgate'), ['serve', '--check', '--config', join(installed, 'config', 'gateway.yaml'), '--store', `file:${join(dir, 'table.json')}`], { cwd: dir });
  t.is(check.code, 0, check.stderr);
  t.regex(check.stderr, /configuration OK/);
});
