// The CLIs behave as operators expect from kubectl, etcdctl and git: --version, --help that
// never runs anything, group help, flags before or after the command words, every flag
// documented with its default, "did you mean", one message per failure, exit 2 for usage.
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMON_OPTIONS } from '../src/cli/args';
import { COMMANDS } from '../src/cli/cellctl';
import { FLAG_DOCS, closest } from '../src/cli/flags';
import { CELLGATE, cellctl, runCli } from './helpers/cli';
import { demoTopologyYaml } from './helpers/fixtures';

let dir: string;
let table: string;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cellgate-cli-conv-'));
  await writeFile(join(dir, 'topology.yaml'), demoTopologyYaml);
  table = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', join(dir, 'topology.yaml'), '--file', table]);
  if (init.code !== 0) throw new Error(init.stderr);
});
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

const cellgate = (args: readonly string[], opts?: Parameters<typeof runCli>[2]) => runCli(CELLGATE, args, opts);
const version = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

test('--version on both binaries, wherever it is', async (t) => {
  for (const [run, name] of [[cellctl, 'cellctl'], [cellgate, 'cellgate']] as const) {
    for (const args of [['--version'], ['serve', '--version'], ['zone', 'down', '--version']]) {
      const r = await run(args);
      t.is(r.code, 0, `${name} ${args.join(' ')}`);
      t.is(r.stdout, `${name} ${version} (node ${process.version})\n`);
    }
  }
});

test('cellgate serve --help prints help and exits at once: nothing listens, nothing is opened', async (t) => {
  const started = Date.now();
  // A store that cannot be opened and a port that cannot be had: --help must not touch either.
  const r = await cellgate(['serve', '--store', 'etcd:127.0.0.1:1', '--port', '1', '--help'], { timeoutMs: 10_000 });
  t.is(r.code, 0);
  t.regex(r.stdout, /^Usage: cellgate serve/);
  for (const flag of ['--config', '--store', '--etcd-cacert', '--etcd-cert', '--etcd-key', '--etcd-user', '--workers']) t.true(r.stdout.includes(flag), flag);
  t.notRegex(r.stderr, /listening/);
  t.true(Date.now() - started < 10_000);
  for (const command of ['demo', 'zone-server']) {
    const h = await cellgate(['--help', command]);
    t.is(h.code, 0);
    t.regex(h.stdout, new RegExp(`^Usage: cellgate ${command}`));
  }
  const global = await cellgate(['--help']);
  t.is(global.code, 0);
  t.regex(global.stdout, /serve[\s\S]*demo[\s\S]*zone-server/);
});

test('cellctl zone --help lists down, drain, up, add and remove; cellctl zone alone is a usage error naming them', async (t) => {
  const r = await cellctl(['zone', '--help']);
  t.is(r.code, 0);
  for (const sub of ['zone down', 'zone drain', 'zone up', 'zone add', 'zone remove']) t.regex(r.stdout, new RegExp(`^  ${sub} `, 'm'));
  t.notRegex(r.stdout, /cell move/);
  const bare = await cellctl(['zone']);
  t.is(bare.code, 2);
  t.is(bare.stderr, 'cellctl: cellctl zone needs a command: down, drain, up, add, remove (see cellctl zone --help)\n');
  const helpWord = await cellctl(['help', 'zone', 'down']);
  t.is(helpWord.code, 0);
  t.regex(helpWord.stdout, /^Usage: cellctl zone down/);
});

test('store and output flags before or after the command words give the same result', async (t) => {
  const after = await cellctl(['status', '--file', table, '--json']);
  const before = await cellctl(['--file', table, '--json', 'status']);
  const between = await cellctl(['--json', 'status', '--file', table]);
  t.is(after.code, 0, after.stderr);
  t.is(before.stdout, after.stdout);
  t.is(between.stdout, after.stdout);
  const down = await cellctl(['--file', table, '--json', 'zone', 'down', 'sh-a', '--reason', 'flags first', '--yes']);
  t.is(down.code, 0, down.stderr);
  t.like(JSON.parse(down.stdout), { versionBefore: 1, versionAfter: 2 });
  // A value that looks like a command word is still the flag's value.
  const reason = await cellctl(['--file', table, 'zone', 'up', '--reason', 'zone', 'sh-a', '--yes', '--json']);
  t.is(reason.code, 0, reason.stderr);
  const gwBefore = await cellgate(['--store', 'file:/nonexistent/dir/t.json', 'serve', '--help']);
  t.is(gwBefore.code, 0);
});

test('every flag of every command is documented, with its default, in that command\'s help', async (t) => {
  const undocumented = COMMANDS.flatMap((c) => Object.keys({ ...COMMON_OPTIONS, ...c.options }).filter((f) => !FLAG_DOCS[f]).map((f) => `${c.words.join(' ')} --${f}`));
  t.deepEqual(undocumented, []);
  for (const c of COMMANDS) {
    const r = await cellctl([...c.words, '--help']);
    t.is(r.code, 0);
    for (const flag of Object.keys(c.options)) {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`  --${flag} `) || l === `  --${flag}`);
      t.truthy(line, `${c.words.join(' ')} --help shows --${flag}`);
      const doc = FLAG_DOCS[flag]!;
      if (doc.default) t.true(r.stdout.includes(`default: ${doc.default}`), `--${flag} default`);
    }
  }
});

test('typos: "did you mean" for commands and flags, exit 2, one line', async (t) => {
  const cases: [string[], string][] = [
    [['zoen', 'down', 'x'], 'cellctl: unknown command "zoen down": did you mean "zone down"? (see cellctl --help)\n'],
    [['zone', 'dwon', 'x'], 'cellctl: unknown command "zone dwon": did you mean "zone down"? (see cellctl zone --help)\n'],
    [['stauts'], 'cellctl: unknown command "stauts": did you mean "status"? (see cellctl --help)\n'],
    [['status', '--file', 'x', '--jsno'], 'cellctl: unknown flag --jsno: did you mean --json? (see cellctl status --help)\n'],
    [['zone', 'down', 'x', '--reasn', 'r'], 'cellctl: unknown flag --reasn: did you mean --reason? (see cellctl zone down --help)\n'],
    [['zone', 'down', 'x', '--reason'], 'cellctl: --reason needs a value (see cellctl zone down --help)\n'],
    [['frobnicate'], 'cellctl: unknown command "frobnicate" (see cellctl --help)\n'],
  ];
  for (const [args, stderr] of cases) {
    const r = await cellctl(args);
    t.is(r.code, 2, args.join(' '));
    t.is(r.stderr, stderr);
    t.is(r.stdout, '');
  }
  const gw = await cellgate(['serv']);
  t.is(gw.code, 2);
  t.is(gw.stderr, 'cellgate: unknown command "serv": did you mean "serve"? (see cellgate --help)\n');
  const flag = await cellgate(['serve', '--prot', '8080']);
  t.is(flag.code, 2);
  t.is(flag.stderr, 'cellgate: unknown flag --prot: did you mean --port? (see cellgate serve --help)\n');
  t.is(closest('prot', ['port', 'host']), 'port', 'a transposition is one step');
  t.is(closest('PORT', ['port']), 'port', 'a case slip');
  t.is(closest('xyz', ['status', 'route']), null);
});

test('a failure with many problems prints each once', async (t) => {
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'name: x\ncells: 0\nzones:\n  - {name: a, region: r, city: c, capacity: -1, upstreams: 7}\n');
  const r = await cellctl(['validate', bad]);
  t.is(r.code, 3);
  const lines = r.stderr.trimEnd().split('\n');
  t.regex(lines[0]!, /^cellctl: invalid topology \(\d+ problems\):$/);
  t.true(lines.length > 2);
  for (const problem of ['cells: must be', 'zones[0].capacity: must be', 'zones[0].upstreams: must be']) {
    t.is(r.stderr.split(problem).length - 1, 1, `${problem} printed once`);
  }
});

test('cellctl validate accepts the file store\'s own {version, table} document', async (t) => {
  const r = await cellctl(['validate', table]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /valid table file "demo" at version \d+ \(64 cells, \d+ zones, sha256:/);
  const json = await cellctl(['validate', table, '--json']);
  t.like(JSON.parse(json.stdout), { valid: true, kind: 'table file', cells: 64 });
  // A table document inside a broken envelope is refused with the reason.
  const doc = JSON.parse(await readFile(table, 'utf8')) as { table: unknown };
  const broken = join(dir, 'broken.json');
  await writeFile(broken, JSON.stringify({ version: 0, table: doc.table }));
  const bad = await cellctl(['validate', broken]);
  t.is(bad.code, 3);
  t.regex(bad.stderr, /\{"version": <positive integer>, "table": \{\.\.\.\}\}/);
  // The bare table still validates.
  const bare = join(dir, 'bare.json');
  await writeFile(bare, JSON.stringify(doc.table));
  t.is((await cellctl(['validate', bare])).code, 0);
});

test('cellgate demo --help does not start the demo', async (t) => {
  const child = spawn(process.execPath, [CELLGATE, 'demo', '--help', '--dir', join(dir, 'never')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('exit', (c) => { clearTimeout(timer); resolve(c); });
  });
  t.is(code, 0);
  t.regex(out, /^Usage: cellgate demo/);
  await t.throwsAsync(readFile(join(dir, 'never', 'table.json')), undefined, 'no demo table made');
});

test('numbers are decimal as written: "1e3", "0x10", " 5" and "" are refused with exit 2, naming the flag', async (t) => {
  for (const raw of ['1e3', '0x10', ' 5', '', '5.']) {
    const r = await cellctl(['history', '--file', table, '--limit', raw]);
    t.is(r.code, 2, JSON.stringify(raw));
    t.is(r.stderr, `cellctl: --limit must be a positive integer, got "${raw}"\n`);
  }
  const share = await cellctl(['zone', 'down', 'sh-a', '--file', table, '--dry-run', '--max-move-share', '5e-1']);
  t.is(share.code, 2);
  t.regex(share.stderr, /--max-move-share must be a number in \[0, 1\], got "5e-1"/);
  t.is((await cellctl(['history', '--file', table, '--limit', '3'])).code, 0, 'a plain decimal is taken');
});
