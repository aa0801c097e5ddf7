// Instances of sh-a's default service register with `cellgate register` and die (kill -9)
// every second under GET load; sh-a's static servers stay up, so at least one instance of
// the service is always alive. Nothing may fail, and no request may reach an instance
// whose lease has ended (a sidecar killed, its server left running).
import { churnInstances, noRequestAfterLease } from '../instances';
import { standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at } from '../steps';

export default defineScenario({
  name: 'instance-churn',
  title: 'Registered instances come and die every second under load',
  description: 'Every second a new instance of sh-a (a zone server with a `cellgate register` sidecar, TTL 2 s) registers and an older one dies: kill -9 of server and sidecar, or of the sidecar alone (its server lives on unregistered). Gateways follow the registry: safe requests to a dead instance are retried on another endpoint, so none fails; no request reaches an instance once its lease has ended (TTL + 1 s after its sidecar died); the table revision never moves.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150, postShare: 0 },
  durationMs: 17_000,
  timeline: [at(1_000, churnInstances({ zone: 'sh-a', count: 10, periodMs: 1_000, ttlS: 2, keep: 3 }))],
  invariants: [...standardInvariants(), zeroFailed(), noRequestAfterLease()],
});
