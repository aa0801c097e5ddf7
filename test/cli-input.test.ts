// Input sizes: cellctl validate and init refuse a topology or table file over 16 MiB at once
// (exit 3, the file and the limit named), without reading it whole.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { MAX_DOCUMENT_BYTES } from '../src/cells/topology';
import { cellctl } from './helpers/cli';
import { demoTopologyYaml } from './helpers/fixtures';

/** A sparse file of `size` bytes starting with `head` (made in no time, takes no disk). */
async function sparseFile(path: string, head: string, size: number): Promise<void> {
  const f = await open(path, 'w');
  try {
    await f.write(head, 0);
    await f.truncate(size);
  } finally {
    await f.close();
  }
}

test('validate and init refuse a file one byte over 16 MiB with exit 3; one at the limit is read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-input-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const overYaml = join(dir, 'over.yaml');
  await sparseFile(overYaml, demoTopologyYaml, MAX_DOCUMENT_BYTES + 1);
  const v = await cellctl(['validate', overYaml]);
  t.is(v.code, 3, v.stderr);
  t.regex(v.stderr, /over\.yaml is 16777217 bytes, over the limit of 16777216 bytes \(16 MiB\)/);
  const j = await cellctl(['validate', overYaml, '--json']);
  t.is((JSON.parse(j.stdout) as { error: string }).error, 'INVALID_TOPOLOGY');

  const overJson = join(dir, 'over.json');
  await sparseFile(overJson, '{"format": 1, ', MAX_DOCUMENT_BYTES + 1);
  const tj = await cellctl(['validate', overJson, '--json']);
  t.is(tj.code, 3);
  t.is((JSON.parse(tj.stdout) as { error: string }).error, 'INVALID_TABLE', 'a table document is named as one');

  const tablePath = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', overYaml, '--file', tablePath]);
  t.is(init.code, 3, init.stderr);
  t.regex(init.stderr, /over the limit/);

  // Exactly at the limit the file is read and parsed: the demo topology padded with a YAML comment.
  const atLimit = join(dir, 'at-limit.yaml');
  const padding = MAX_DOCUMENT_BYTES - Buffer.byteLength(demoTopologyYaml) - 2;
  await writeFile(atLimit, `${demoTopologyYaml}#${'x'.repeat(padding)}\n`);
  const ok = await cellctl(['validate', atLimit], { timeoutMs: 120_000 });
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /valid topology "demo"/);
});

test('an endless stream is cut one chunk past the limit', async (t) => {
  const r = await cellctl(['validate', '/dev/zero']);
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /\/dev\/zero is more than 16777216 bytes/);
});
