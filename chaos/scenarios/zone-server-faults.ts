// One upstream server of a zone misbehaves while its peer is healthy: first it freezes
// (SIGSTOP: connections accepted, nothing answered) and continues, then it dies (kill -9)
// and is restarted. No operator acts: passive health (timeouts, refused connections,
// ejection) must keep the errors to the requests that were caught by the fault.
import { errorWindow, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, killZone, pauseZone, restartZone, resumeZone } from '../steps';

export default defineScenario({
  name: 'zone-server-faults',
  title: 'One upstream server frozen, then killed, behind a healthy peer',
  description: 'SIGSTOP server 1 of sh-b for 4 s, SIGCONT; later kill -9 server 2 of hz-a and restart it. Errors are allowed only while a server is frozen (until the request timeout after it continues) and around the crash; afterwards nothing fails.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 16_000,
  timeline: [
    at(2_000, pauseZone('sh-b', [0])),
    at(6_000, resumeZone('sh-b', [0])),
    at(9_000, killZone('hz-a', [1])),
    at(11_000, restartZone('hz-a', [1])),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'SIGSTOP sh-b servers 1', until: 'restart hz-a servers 2', edge: 'end', boundMs: 500 }),
    zeroFailed({ from: 'restart hz-a servers 2' }),
  ],
});
