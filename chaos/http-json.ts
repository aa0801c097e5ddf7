// A tiny JSON GET for the harness's own probes (readiness, admin endpoints): no keep-alive,
// bounded in time, never throws on a non-2xx status.
import { request } from 'node:http';

export interface JsonReply {
  readonly status: number;
  readonly json: unknown;
}

export function getJson(port: number, path: string, timeoutMs = 1_000): Promise<JsonReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: unknown = null;
        try { json = JSON.parse(text); } catch { json = text; }
        resolve({ status: res.statusCode ?? 0, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function getText(port: number, path: string, timeoutMs = 1_000): Promise<string> {
  return getJson(port, path, timeoutMs).then((r) => (typeof r.json === 'string' ? r.json : JSON.stringify(r.json)));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns true, or throws `what` after timeoutMs — at once when
 * `abort` names a reason to give up (e.g. the process being waited for exited).
 */
export async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<boolean>, intervalMs = 50, abort?: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    const reason = abort?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}`);
}
