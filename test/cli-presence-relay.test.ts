// `cellgate presence-relay` as a real process: bad arguments exit 2 with one clear line
// (nothing listens, nothing is opened); a real run prints its address in a JSON log line,
// relays a record, and on SIGTERM exits 0 with its records gone.
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { SUBCOMMANDS } from '../src/cli/cellgate';
import { FLAG_DOCS } from '../src/cli/flags';
import { CELLGATE, runCli, useCliWorld } from './helpers/cli';
import { relayRequest } from './helpers/relay-http';
import { inheritedEnv } from './helpers/run';
import { until } from './helpers/wait';

const world = useCliWorld(test, 'relay');
const relayCli = (args: readonly string[]) => runCli(CELLGATE, ['presence-relay', ...args], { timeoutMs: 20_000 });

test('bad arguments exit 2 with one line naming the problem', async (t) => {
  const etcd = `etcd:${world.etcd.endpoints.join(',')}`;
  const tokenPath = join(world.dir, 'empty-token');
  await writeFile(tokenPath, '\n');
  const cases: [readonly string[], RegExp][] = [
    [['--store', `file:${join(world.dir, 't.json')}`, '--listen', '127.0.0.1:0'], /presence relay writes to etcd only/],
    [['--listen', '127.0.0.1:0'], /no store: give --store etcd:HOST:PORT/],
    [['--store', etcd], /needs --listen HOST:PORT/],
    [['--store', etcd, '--listen', 'localhost'], /--listen must be HOST:PORT/],
    [['--store', etcd, '--listen', '127.0.0.1:70000'], /--listen must be HOST:PORT/],
    [['--store', etcd, '--listen', '127.0.0.1:0', '--ttl', '0'], /--ttl must be an integer in \[1, 3600\]/],
    [['--store', etcd, '--listen', '127.0.0.1:0', '--max-gateways', 'many'], /--max-gateways must be an integer/],
    [['--store', etcd, '--listen', '127.0.0.1:0', '--token-file', join(world.dir, 'nope')], /cannot read --token-file .*ENOENT/],
    [['--store', etcd, '--listen', '127.0.0.1:0', '--token-file', tokenPath], /must hold one token/],
    [['--store', etcd, '--listen', '127.0.0.1:0', '--max-gateway', '5'], /unknown flag --max-gateway: did you mean --max-gateways\?/],
    [['--store', etcd, '--listen', '127.0.0.1:0', 'extra'], /takes no arguments/],
  ];
  const results = await Promise.all(cases.map(([args]) => relayCli(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i]!;
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    t.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    t.is(r.stdout, '');
  }
});

test('a run: its address in a JSON log line, a record relayed with the token, SIGTERM exits 0 and its records are gone', async (t) => {
  const prefix = `/cli-relay-${randomBytes(3).toString('hex')}`;
  const tokenPath = join(world.dir, 'token');
  await writeFile(tokenPath, 'tok-123\n');
  const child = spawn(process.execPath, [CELLGATE, 'presence-relay', '--store', `etcd:${world.etcd.endpoints.join(',')}`, '--prefix', prefix,
    '--listen', '127.0.0.1:0', '--id', 'relay-cli', '--token-file', tokenPath], { env: inheritedEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await until('the listening line', () => /"relay\.listening"/.test(stderr), 15_000);
  const line = JSON.parse(stderr.split('\n').find((l) => l.includes('"relay.listening"'))!) as { url: string; id: string; token: boolean; level: string };
  t.is(line.id, 'relay-cli');
  t.true(line.token);
  t.regex(line.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const now = new Date().toISOString();
  const record = { id: 'gw-cli', zone: null, appliedVersion: 3, checksum: 'c3', inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h' };
  const res = await relayRequest(line.url, 'PUT', '/v1/gateways/gw-cli', JSON.stringify({ record, ttlSeconds: 10 }), { authorization: 'Bearer tok-123' });
  t.is(res.status, 204);
  const client = new Etcd3({ hosts: world.etcd.endpoints.map((e) => `http://${e}`) });
  t.teardown(() => client.close());
  const key = `${prefix}/gateways-relayed/gw-cli`;
  t.is(JSON.parse((await client.get(key).string())!).relay, 'relay-cli');
  child.kill('SIGTERM');
  t.is(await exited, 0, stderr);
  t.is(await client.get(key).string(), null, 'the lease was revoked');
  t.regex(stderr, /"relay\.stopped"/);
});

test('docs/configuration.md lists every flag of cellgate presence-relay, with the defaults of its help', async (t) => {
  const page = await readFile(join(__dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');
  const section = page.slice(page.indexOf('## cellgate presence-relay'));
  t.true(section.length > 100, 'the section exists');
  const command = SUBCOMMANDS.find((c) => c.name === 'presence-relay')!;
  for (const flag of Object.keys(command.options)) t.true(section.includes(`\`--${flag}`), `--${flag} documented`);
  t.regex(section, /`--ttl S` \| `10` \|/);
  t.regex(section, /`--max-gateways N` \| `20000` \|/);
  t.regex(FLAG_DOCS['max-gateways']!.default!, /^20000$/);
  t.regex(FLAG_DOCS.ttl!.default!, /presence-relay 10/);
});
