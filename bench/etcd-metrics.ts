// What etcd itself says about its disk: the WAL fsync histogram of every member, read from
// its /metrics, so the failover figures can be read against the cost of a durable write on
// this machine (each committed change waits for a majority's fsync).
import { request } from 'node:http';

/** Cumulative bucket counts by upper bound (seconds), summed over members. */
export type Histogram = Map<number, number>;

const FSYNC_BUCKET = /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="([^"]+)"\} (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/;

function getText(endpoint: string, path: string): Promise<string> {
  const [host, port] = [endpoint.slice(0, endpoint.lastIndexOf(':')), Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, timeout: 2_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The WAL fsync histogram summed over `endpoints` ("host:port" client URLs). */
export async function walFsyncHistogram(endpoints: readonly string[]): Promise<Histogram> {
  const sum: Histogram = new Map();
  for (const text of await Promise.all(endpoints.map((e) => getText(e, '/metrics')))) {
    for (const line of text.split('\n')) {
      const m = FSYNC_BUCKET.exec(line);
      if (!m) continue;
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      sum.set(le, (sum.get(le) ?? 0) + Number(m[2]));
    }
  }
  return sum;
}

/** `after - before`, bucket by bucket. */
export function histogramDelta(after: Histogram, before: Histogram): Histogram {
  return new Map([...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)]));
}

/** Count, and the bucket bound (ms) under which fraction p of the observations fall. */
export function histogramSummary(h: Histogram, p: number): { count: number; boundMs: number } {
  const bounds = [...h.keys()].sort((a, b) => a - b);
  const count = h.get(Infinity) ?? 0;
  const bound = bounds.find((le) => (h.get(le) ?? 0) >= p * count) ?? Infinity;
  return { count, boundMs: bound * 1000 };
}
