// The gateway bench reads wrk's report; these are wrk 4.1 reports as printed on this project's
// machine (Debian wrk, --latency), one clean and one with non-2xx answers and socket errors.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWrk, writeUsersScript } from '../bench/wrk';

const CLEAN = `Running 5s test @ http://127.0.0.1:41235/api/items
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.65ms   12.16ms  97.33ms   91.78%
    Req/Sec     7.10k   322.37     8.08k    70.00%
  Latency Distribution
     50%  812.00us
     75%   11.04ms
     90%   17.61ms
     99%    1.21s
  36130 requests in 5.04s, 4.33MB read
Requests/sec:   7168.63
Transfer/sec:      0.86MB
`;

const TROUBLED = `Running 1s test @ http://127.0.0.1:35131/api/items
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.65ms   12.16ms  97.33ms   91.78%
    Req/Sec   699.10    322.37     1.08k    70.00%
  Latency Distribution
     50%    6.39ms
     75%   11.04ms
     90%   17.61ms
     99%   69.08ms
  737 requests in 1.04s, 88.64KB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    711.63
Transfer/sec:     85.59KB
`;

test('a clean wrk report: requests/s, total, p50 in µs and p99 in s converted to ms, nothing bad', (t) => {
  const r = parseWrk(CLEAN);
  t.is(r.rps, 7168.63);
  t.is(r.total, 36130);
  t.is(r.bad, 0);
  t.is(r.p50Ms, 0.812);
  t.is(r.p99Ms, 1210);
});

test('non-2xx answers and socket errors count as bad requests', (t) => {
  const r = parseWrk(TROUBLED);
  t.is(r.total, 737);
  t.is(r.bad, 7 + 2 + 1 + 3);
  t.is(r.p50Ms, 6.39);
  t.is(r.p99Ms, 69.08);
});

test('a report without figures (wrk failed) parses as NaN, which runWrk refuses', (t) => {
  t.true(Number.isNaN(parseWrk('unable to connect to 127.0.0.1:1 Connection refused').rps));
});

test('the users script prebuilds one request per user and sends them round-robin', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-wrk-test-'));
  try {
    const text = await readFile(await writeUsersScript(dir, 100_000), 'utf8');
    t.regex(text, /for i = 1, 100000 do/);
    t.regex(text, /n = n % 100000 \+ 1/);
    t.regex(text, /\["x-user-id"\] = id/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
