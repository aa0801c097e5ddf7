// A zone's network degrades: first 400 ms of added latency on every connection (slow but
// within the gateways' timeouts: nothing may fail), then 10 % of the client chunks reset
// the connection. Errors only while connections are being dropped; the zone recovers.
import { errorWindow, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, zoneNetwork } from '../steps';

export default defineScenario({
  name: 'zone-network',
  title: 'Zone latency, then dropped connections',
  description: 'A TCP proxy in front of both sz-a servers adds 400 ms of latency for 4 s (no request may fail), then resets 10 % of connections on data for 4 s (errors bounded to that window), then heals.',
  quick: false,
  topology: {
    zones: [
      { name: 'sh-a', region: 'east', city: 'shanghai', capacity: 20 },
      { name: 'sh-b', region: 'east', city: 'shanghai', capacity: 20 },
      { name: 'hz-a', region: 'east', city: 'hangzhou', capacity: 20 },
      { name: 'sz-a', region: 'south', city: 'shenzhen', capacity: 20, proxied: true },
    ],
  },
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 15_000,
  timeline: [
    at(2_000, zoneNetwork('sz-a', { kind: 'pass', latencyMs: 400 }, 'sz-a +400 ms latency')),
    at(6_000, zoneNetwork('sz-a', { kind: 'pass' }, 'sz-a latency healed')),
    at(8_000, zoneNetwork('sz-a', { kind: 'pass', dropRate: 0.1 }, 'sz-a drops 10 %')),
    at(12_000, zoneNetwork('sz-a', { kind: 'pass' }, 'sz-a drops healed')),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed({ until: 'sz-a latency healed' }),
    errorWindow({ fault: 'sz-a drops 10 %', until: 'sz-a drops healed', edge: 'end', boundMs: 1_000 }),
  ],
});
