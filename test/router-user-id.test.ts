// One user, one cell: a user id is decoded the same way (UTF-8) from a header, a cookie, a
// query, a path, /admin/route, `cellctl route` and the fencing helper, and a request whose
// sources carry two different ids is refused, naming them. Real HTTP to a real gateway with
// real upstreams on 127.0.0.1; `cellctl route` as a child process over a file store.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { decodeUserId, fromWire, userIdProblem } from '../src/cells/user-id';
import { requestUserId } from '../src/fencing';
import { BadUserId, compileUserIdExtractor } from '../src/router/user-id';
import { cellctl } from './helpers/cli';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, type HttpResult } from './helpers/upstreams';

/** What Node hands over for a header sent as UTF-8: one latin1 char per byte. */
const wire = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const IDS = ['café', '用户', 'ü', 'emoji-😀', 'plain-ascii'];

test('the shared decoding: UTF-8 from the wire, C0/DEL/C1 and bad UTF-8 refused, everything else kept', (t) => {
  for (const id of IDS) {
    t.is(decodeUserId(wire(id), 'wire'), id, `header ${id}`);
    t.is(decodeUserId(encodeURIComponent(id), 'percent'), id, `percent ${id}`);
    t.is(decodeUserId(wire(id), 'percent'), id, `raw bytes in a path ${id}`);
    t.is(decodeUserId(encodeURIComponent(id), 'form'), id, `query ${id}`);
    t.is(decodeUserId(id, 'text'), id, `text ${id}`);
  }
  t.is(decodeUserId('a+b', 'form'), 'a b');
  t.is(decodeUserId('a+b', 'percent'), 'a+b');
  t.is(fromWire('ascii'), 'ascii');
  t.is(fromWire('\xe9'), null, 'a lone latin1 é is not UTF-8');
  t.deepEqual(decodeUserId('\xe9', 'wire'), { problem: 'notUtf8' });
  t.deepEqual(decodeUserId('%E9', 'percent'), { problem: 'notUtf8' });
  t.deepEqual(decodeUserId('x%', 'form'), { problem: 'notUtf8' });
  t.deepEqual(decodeUserId(wire('x\u0085y'), 'wire'), { problem: 'control' }, 'C1 as UTF-8');
  t.deepEqual(decodeUserId('x%C2%9By', 'percent'), { problem: 'control' }, 'CSI as an escape');
  t.deepEqual(decodeUserId('a\x7f', 'text'), { problem: 'control' });
  t.deepEqual(decodeUserId('a\x1b[2J', 'text'), { problem: 'control' });
  t.deepEqual(decodeUserId('\ud800', 'text'), { problem: 'notUtf8' }, 'a lone surrogate');
  t.deepEqual(decodeUserId('u'.repeat(257), 'text'), { problem: 'tooLong' });
  t.is(userIdProblem('用'.repeat(256)), null);
  t.is(userIdProblem(''), 'empty');
});

test('fromWire decodes exactly what a strict UTF-8 decoder accepts (random and edge byte strings)', (t) => {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a BOM is kept: an id is bytes, not a file
  const reference = (bytes: Buffer): string | null => {
    try {
      return strict.decode(bytes);
    } catch {
      return null;
    }
  };
  const cases: Buffer[] = [
    [0xc3, 0xa9], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0xa0, 0x80], [0xed, 0xa0, 0x80], [0xed, 0x9f, 0xbf],
    [0xf0, 0x8f, 0xbf, 0xbf], [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80],
    [0xe7, 0x94], [0x80], [0xbf], [0xff], [0x61, 0xe7, 0x94, 0xa8, 0x62], [0xef, 0xbb, 0xbf, 0x78],
  ].map((b) => Buffer.from(b));
  // A fixed-seed generator: the same bytes every run.
  let seed = 12345;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 20_000; i++) {
    const len = 1 + (next() % 8);
    const bytes = Buffer.alloc(len);
    for (let k = 0; k < len; k++) bytes[k] = next() % 4 === 0 ? next() % 0x80 : 0x80 + (next() % 0x80);
    cases.push(bytes);
  }
  for (const s of ['café', '用户', '😀', 'ü', 'a\u0085b']) cases.push(Buffer.from(s, 'utf8'));
  let accepted = 0;
  for (const bytes of cases) {
    const expected = reference(bytes);
    if (expected !== null) accepted++;
    if (fromWire(bytes.toString('latin1')) !== expected) t.fail(`bytes ${bytes.toString('hex')}: ${fromWire(bytes.toString('latin1'))} vs ${expected}`);
  }
  t.true(accepted > 100, `both kinds were tried (${accepted} valid of ${cases.length})`);
  t.is(fromWire('\u0100'), null, 'a char above 0xff is not a byte');
});

test('extractor: all sources agree or the request is refused, naming the sources', (t) => {
  const x = compileUserIdExtractor([{ header: 'x-user-id' }, { cookie: 'uid' }, { query: 'user' }, { path: '/u/:user/x' }]);
  t.is(x('/a', { 'x-user-id': 'h' }), 'h');
  t.is(x('/a', { cookie: 'uidx=1; uid="quoted"' }), 'quoted');
  t.is(x('/a?users=1&user=q%20w', {}), 'q w');
  t.is(x('/a?user', {}), null, 'an empty value is no user');
  t.is(x('/u/p%2Fq/x/more', {}), 'p/q');
  t.is(x('/u/p/y', {}), null, 'literal segments must match');
  t.is(x('/a', {}), null);
  t.is(x(`/u/${encodeURIComponent('用户')}/x?user=${encodeURIComponent('用户')}`, { 'x-user-id': wire('用户'), cookie: `uid=${wire('用户')}` }), '用户',
    'the same id from every source is one id');
  const conflict = x('/u/bob/x', { 'x-user-id': 'alice' });
  t.true(conflict instanceof BadUserId);
  t.is((conflict as BadUserId).message, 'the header x-user-id and the path /u/:user/x carry different user ids');
  const q = x('/a?user=bob', { cookie: 'uid=alice' });
  t.is((q as BadUserId).message, 'the cookie uid and the query parameter user carry different user ids');
  t.regex((x('/a?user=a&user=b', {}) as BadUserId).message, /query parameter user is repeated with different user ids/);
  t.is(x('/a?user=a&user=a', {}), 'a', 'a repeated identical query value is one id');
  // Keys are read decoded, as the upstream's URLSearchParams reads them.
  t.regex((x('/a?us%65r=bob&user=alice', {}) as BadUserId).message, /query parameter user is repeated with different user ids/);
  t.is(x('/a?us%65r=bob', {}), 'bob');
  t.is(x('/a?us%zzr=bob&user=alice', {}), 'alice', 'a key with a malformed escape is not `user`');
  t.regex((x('/a', { cookie: 'uid=a; uid=b' }) as BadUserId).message, /cookie uid is repeated/);
  t.regex((x('/a', { 'x-user-id': wire('x\u0085y') }) as BadUserId).message, /user id in the header x-user-id has control characters/);
  t.regex((x('/a', { 'x-user-id': '\xff' }) as BadUserId).message, /is not valid UTF-8/);
  // Node joins a repeated unknown header with ", "; the raw list tells them apart.
  t.is(x('/a', { 'x-user-id': 'alice, alice' }, ['X-User-Id', 'alice', 'x-user-id', 'alice']), 'alice');
  t.regex((x('/a', { 'x-user-id': 'alice, bob' }, ['X-User-Id', 'alice', 'x-user-id', 'bob']) as BadUserId).message, /header x-user-id is repeated/);
  t.is(x('/a', { 'x-user-id': 'smith, john' }, ['x-user-id', 'smith, john']), 'smith, john', 'one header with a comma is one id');
  // A header Node keeps only the first of: the raw list is always read.
  const auth = compileUserIdExtractor([{ header: 'authorization' }]);
  t.true(auth('/a', { authorization: 'a' }, ['Authorization', 'a', 'Authorization', 'b']) instanceof BadUserId);
});

test('fencing reads the routed user id with the same decoding', (t) => {
  t.is(requestUserId({ 'x-user-id': wire('café') }), 'café');
  t.is(requestUserId({ 'x-user-id': wire('用户, 用户') }), '用户', 'an identical repeat passed on by the gateway');
  t.is(requestUserId({ 'x-user-id': '\xe9' }), null);
  t.is(requestUserId({}), null);
});

test('café, 用户, ü and emoji: one cell via header, query, path, cookie, /admin/route and cellctl route', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => Promise.all([a!.stop(), b!.stop()]));
  const zones = [{ name: 'z1', upstreams: [a!.url] }, { name: 'z2', upstreams: [b!.url] }];
  const table = tableFor(zones, { cells: 64 });
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, {
    waitVersion: 1,
    config: { userId: { sources: [{ header: 'x-user-id' }, { cookie: 'uid' }, { query: 'user' }, { path: '/u/:user' }] } },
  });
  const view = new RoutingView(versioned(table, 1));

  // cellctl over a file store initialised from the same topology (the table is deterministic).
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-user-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const topo = join(dir, 'topo.json');
  await writeFile(topo, JSON.stringify({
    name: 'test', cells: 64, global: 'z1', overrides: {},
    zones: zones.map((z) => ({ name: z.name, region: 'east', city: z.name, capacity: 100, upstreams: z.upstreams })),
  }));
  const tablePath = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', topo, '--file', tablePath]);
  t.is(init.code, 0, init.stderr);
  const routed = await cellctl(['route', ...IDS, '--file', tablePath, '--json']);
  t.is(routed.code, 0, routed.stderr);
  const cliCells = new Map(routed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { user: string; cell: string }).map((r) => [r.user, r.cell]));
  const viaStdin = await cellctl(['route', '--stdin', '--file', tablePath, '--json'], { input: IDS.join('\n') + '\n' });
  t.is(viaStdin.code, 0, viaStdin.stderr);
  t.deepEqual(viaStdin.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { user: string }).user), IDS, 'stdin lines decode as UTF-8');

  const cellOf = (r: HttpResult): string => String(r.json<{ headers: Record<string, string> }>().headers['x-cell-id']);
  const cells = new Set<string>();
  for (const id of IDS) {
    const expected = view.routeUnit(id, Date.now()).cell as string;
    cells.add(expected);
    t.is(cliCells.get(id), expected, `cellctl route ${id}`);
    const ways: [string, Promise<HttpResult>][] = [
      ['header', httpCall(`${g.url}/x`, { headers: { 'x-user-id': wire(id) } })],
      ['query', httpCall(`${g.url}/x?user=${encodeURIComponent(id)}`)],
      ['path', httpCall(`${g.url}/u/${encodeURIComponent(id)}`)],
      ['cookie', httpCall(`${g.url}/x`, { headers: { cookie: `uid=${encodeURIComponent(id)}` } })],
      ['all at once', httpCall(`${g.url}/u/${encodeURIComponent(id)}?user=${encodeURIComponent(id)}`, { headers: { 'x-user-id': wire(id) } })],
    ];
    for (const [how, call] of ways) {
      const res = await call;
      t.is(res.status, 200, `${id} via ${how}: ${res.text()}`);
      t.is(cellOf(res), expected, `${id} via ${how}`);
    }
    const admin = await httpCall(`${g.admin}/admin/route?user=${encodeURIComponent(id)}`);
    t.is(admin.json<{ cell: string; user: string }>().cell, expected, `/admin/route ${id}`);
    t.is(admin.json<{ user: string }>().user, id);
  }
  t.true(cells.size > 1, 'the ids do not all share one cell by chance, so the check can fail');
});

test('a request carrying two different user ids gets 400 BAD_USER_ID naming the sources; identical repeats pass', async (t) => {
  const [a] = await startUpstreams('a');
  t.teardown(() => a!.stop());
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url] }], { cells: 8 }));
  const g = await startGateway(t, store, { waitVersion: 1, config: { userId: { sources: [{ header: 'x-user-id' }, { query: 'user' }, { path: '/u/:user' }] } } });
  const refused = async (res: HttpResult, message: RegExp): Promise<void> => {
    t.is(res.status, 400, res.text());
    t.deepEqual(res.json(), { error: 'BAD_USER_ID', message: res.json<{ message: string }>().message });
    t.regex(res.json<{ message: string }>().message, message);
  };
  await refused(await httpCall(`${g.url}/x`, { headers: { 'x-user-id': ['alice', 'bob'] } }), /header x-user-id is repeated with different user ids/);
  await refused(await httpCall(`${g.url}/x?user=bob`, { headers: { 'x-user-id': 'alice' } }), /header x-user-id and the query parameter user/);
  await refused(await httpCall(`${g.url}/u/bob?user=alice`), /query parameter user and the path \/u\/:user/);
  await refused(await httpCall(`${g.url}/x`, { headers: { 'x-user-id': wire('用\u0085') } }), /has control characters/);
  t.is(a!.received.length, 0, 'refused requests never reach an upstream');
  const same = await httpCall(`${g.url}/x`, { headers: { 'x-user-id': ['alice', 'alice'] } });
  t.is(same.status, 200, 'an identical repeated header is one id');
  const agree = await httpCall(`${g.url}/u/${encodeURIComponent('café')}?user=caf%C3%A9`, { headers: { 'x-user-id': wire('café') } });
  t.is(agree.status, 200, agree.text());
});
