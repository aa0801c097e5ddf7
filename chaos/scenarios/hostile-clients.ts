// Hostile and careless clients (issue 8) mixed into normal load while a zone fails over:
// hop-by-hop headers the gateway must strip (Upgrade: foo without a WebSocket, Keep-Alive,
// Connection: x-foo + X-Foo), curl-style Expect: 100-continue uploads, repeated and
// conflicting user-id headers, connections that never finish their headers, bodies that
// arrive a chunk at a time. None of it may eject a healthy endpoint, reach a zone server
// with hop-by-hop headers, or make anyone wait past the deadline; normal traffic fails
// only in the failover's error window.
import {
  cellctlExit, errorWindow, noCellOnDownZone, standardInvariants,
} from '../invariants';
import { hopHeadersStripped, noClientPastDeadline, noEjectionWhileHealthy, oddHeadersAnswered } from '../invariants-clients';
import { defineScenario } from '../scenario';
import { at, cellctl, killZone } from '../steps';
import { DEFAULT_TOPOLOGY } from '../topology';

/** The gateway's upstream deadline (requestTimeoutMs, counted from arrival) plus 1 s of slack for a loaded machine. */
const DEADLINE_MS = DEFAULT_TOPOLOGY.gateway.requestTimeoutMs + 1_000;

export default defineScenario({
  name: 'hostile-clients',
  title: 'Hostile and odd clients during a zone failover',
  description: 'Beside 150 req/s of normal load: 24 req/s in bursts of 4 with hop-by-hop headers (Upgrade: foo, Keep-Alive: x, Connection: x-foo + X-Foo), 2 MB Expect: 100-continue uploads, repeated and conflicting x-user-id headers; 30 connections that never finish their headers; uploads a chunk every 150 ms. Then sh-a is killed and taken down. No healthy endpoint may be ejected, no hop-by-hop header reach a zone server, nobody wait past the deadline.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  clients: [
    { kind: 'odd-headers', ratePerSec: 24, burst: 4, uploadBytes: 2_000_000, deadlineMs: DEADLINE_MS + 1_000 },
    { kind: 'slow-headers', connections: 30, lineEveryMs: 1_000 },
    { kind: 'slow-upload', concurrency: 6, chunks: 10, chunkBytes: 4_096, chunkEveryMs: 150, deadlineMs: DEADLINE_MS },
  ],
  sampleEjections: true,
  durationMs: 14_000,
  timeline: [
    at(5_000, killZone('sh-a')),
    at(6_000, cellctl(['zone', 'down', 'sh-a'], { label: 'zone down sh-a' })),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'kill -9 sh-a', until: 'zone down sh-a', edge: 'end', boundMs: 1_000 }),
    cellctlExit('zone down sh-a', [0]),
    noCellOnDownZone(),
    noEjectionWhileHealthy({ 'sh-a': 'kill -9 sh-a' }),
    hopHeadersStripped(),
    oddHeadersAnswered({ fault: 'kill -9 sh-a', until: 'zone down sh-a', boundMs: 1_000 }),
    noClientPastDeadline({ loadDeadlineMs: DEADLINE_MS }),
  ],
});
