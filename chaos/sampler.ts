// Samples every running gateway's passive-health state during a run: the
// cellgate_upstream_ejected_endpoints{zone} gauge, every SAMPLE_MS. An ejection lasts at
// least ejectBaseMs (1 s in the harness), so a sample every 250 ms sees every one.
import { getText } from './http-json';
import type { GatewayProc } from './launcher';

export interface EjectionSample {
  readonly t: number;
  readonly gateway: string;
  readonly zone: string;
  readonly ejected: number;
}

const SAMPLE_MS = 250;

export class EjectionSampler {
  readonly samples: EjectionSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(private readonly gateways: readonly GatewayProc[]) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await Promise.all(this.gateways.filter((g) => g.running).map(async (g) => {
        const text = await getText(g.adminPort, '/metrics', 1_000).catch(() => '');
        const t = Date.now();
        for (const m of text.matchAll(/^cellgate_upstream_ejected_endpoints\{[^}]*zone="([^"]+)"[^}]*\} ([0-9.eE+-]+)$/gm)) {
          this.samples.push({ t, gateway: g.id, zone: m[1] as string, ejected: Number(m[2]) });
        }
      }));
    } finally {
      this.busy = false;
    }
  }
}
