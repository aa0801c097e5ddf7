// Presence relays for the benchmarks: `cellgate presence-relay` processes of this build, each
// on a free loopback port, tracked like every bench child (stopped by stopAll, also on failure).
import { freePort } from '../test/helpers/ports';
import { CELLGATE_JS, startNode, stopAll, type BenchChild } from './children';

export interface StartedRelays {
  readonly procs: BenchChild[];
  /** http://127.0.0.1:PORT of each, in order. */
  readonly urls: string[];
}

/** Resolves once each relay logged relay.listening (it holds its etcd lease by then). */
export async function startRelays(count: number, endpoints: readonly string[], prefix: string): Promise<StartedRelays> {
  const procs: BenchChild[] = [];
  const urls: string[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    procs.push(startNode(`relay-${i}`, CELLGATE_JS, ['presence-relay', '--store', `etcd:${endpoints.join(',')}`, '--prefix', prefix, '--listen', `127.0.0.1:${port}`, '--id', `relay-${i}`]));
    urls.push(`http://127.0.0.1:${port}`);
  }
  try {
    await Promise.all(procs.map((p) => p.waitForLine((line) => line.includes('relay.listening'), 30_000)));
  } catch (err) {
    await stopAll(procs);
    throw err;
  }
  return { procs, urls };
}
