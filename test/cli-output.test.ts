// Operator text is data, not terminal control: reasons, actors, gateway ids and echoed input
// reach a terminal with every control character escaped, and --json keeps them intact.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { escapeForTerminal, formatTable } from '../src/cli/output';
import { progressText } from '../src/cli/plan-view';
import { createFileStore } from '../src/store/file-store';
import { cellctl } from './helpers/cli';
import { demoTopologyYaml } from './helpers/fixtures';

// Sets the terminal title, clears the screen, forges a history row, reverses the text.
const HOSTILE_REASON = 'ok\x1b]0;pwned\x07\x1b[2J\n7->8  2099-01-01T00:00:00Z  root  forged\u202eevil\u2028x\x9b31m';
const HOSTILE_ACTOR = 'mallory\r\nroot@prod\x07';
const UNSAFE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('escapeForTerminal shows every control as a visible escape', (t) => {
  t.is(escapeForTerminal('a\x1b[2Jb\nc\td\x7f\x85\u202e\u2066\u2028'), 'a\\x1b[2Jb\\nc\\td\\x7f\\x85\\u202e\\u2066\\u2028');
  t.is(escapeForTerminal('two\nlines\x1b', true), 'two\nlines\\x1b', 'line breaks kept on request');
  t.is(escapeForTerminal('café 用户 😀 plain'), 'café 用户 😀 plain', 'text that is not control stays as it is');
  const table = formatTable([['A', 'B'], ['x\ny', 'z']]);
  t.is(table.split('\n').length, 2, 'a newline in a cell never makes a row');
  t.is(table, 'A     B\nx\\ny  z');
  const progress = progressText({
    version: 3, converged: false, gateways: [], malformed: [],
    behind: [{ id: 'gw\x1b]0;t\x07\n', zone: null, appliedVersion: 2, checksum: 'x', inFlight: 0, startedAt: '', updatedAt: '', pid: 1, host: 'h' }],
  }, 'the new');
  t.false(UNSAFE.test(progress) || progress.includes('\n'), progress);
});

test('history, status and errors escape hostile operator text; --json keeps it exact', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-output-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, demoTopologyYaml);
  const tablePath = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', topology, '--file', tablePath, '--reason', HOSTILE_REASON, '--actor', HOSTILE_ACTOR]);
  t.is(init.code, 0, init.stderr);

  const history = await cellctl(['history', '--file', tablePath]);
  t.is(history.code, 0, history.stderr);
  t.false(UNSAFE.test(history.stdout), JSON.stringify(history.stdout));
  const rows = history.stdout.trimEnd().split('\n');
  t.is(rows.length, 2, 'a header and one row: nothing forged');
  t.true(rows[1]!.includes('mallory\\r\\nroot@prod\\x07'));
  t.true(rows[1]!.includes('ok\\x1b]0;pwned\\x07\\x1b[2J\\n7->8'));
  t.true(rows[1]!.includes('\\u202eevil\\u2028x\\x9b31m'));

  const json = await cellctl(['history', '--file', tablePath, '--json']);
  t.is(json.code, 0, json.stderr);
  const entry = JSON.parse(json.stdout.trim()) as { reason: string; actor: string };
  t.is(entry.reason, HOSTILE_REASON, '--json keeps the reason exact');
  t.is(entry.actor, HOSTILE_ACTOR);

  // A gateway whose id is hostile, as listed by status.
  const store = createFileStore(tablePath);
  t.teardown(() => store.close());
  const reg = await store.presence.register({
    id: 'gw\x1b[2J\u202e', zone: null, appliedVersion: 1, checksum: 'x', inFlight: 0,
    startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), pid: process.pid, host: 'h',
  }, 60);
  t.teardown(() => reg.close());
  const status = await cellctl(['status', '--file', tablePath]);
  t.is(status.code, 0, status.stderr);
  t.true(status.stdout.includes('gw\\x1b[2J\\u202e'), status.stdout);
  t.false(UNSAFE.test(status.stdout));

  // Errors that echo input.
  for (const args of [['route', 'a\x1b[2J\u202eb', '--file', tablePath], ['frobnicate\x1b]0;x\x07'], ['history', '--limit', '\x1b[2J', '--file', tablePath]]) {
    const r = await cellctl(args);
    t.not(r.code, 0);
    t.true(r.stderr.length > 0);
    t.false(UNSAFE.test(r.stderr.trimEnd()), JSON.stringify(r.stderr));
    t.is(r.stderr.trimEnd().split('\n').length, 1, 'one line');
  }
});

test('a rollback that repairs an invalid document says so, not "nothing to change"', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-repair-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, demoTopologyYaml);
  const tablePath = join(dir, 'table.json');
  t.is((await cellctl(['init', '--topology', topology, '--file', tablePath])).code, 0);
  // Written around cellctl: a document with no zones at version 2.
  const doc = JSON.parse(await readFile(tablePath, 'utf8')) as { version: number; table: { zones: unknown[] } };
  doc.version = 2;
  doc.table.zones = [];
  await writeFile(tablePath, JSON.stringify(doc));
  const r = await cellctl(['rollback', '1', '--reason', 'repair', '--yes', '--file', tablePath]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^repaired: revision 2 held an invalid document; replaced it with the last table cellctl wrote, revision 2 -> 3/);
  t.false(r.stdout.includes('nothing to change'));
  const status = await cellctl(['status', '--file', tablePath, '--json']);
  t.is(status.code, 0, status.stderr);
  t.is((JSON.parse(status.stdout) as { revision: number }).revision, 3);
});
