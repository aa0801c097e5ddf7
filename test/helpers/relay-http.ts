// Real HTTP to a presence relay on 127.0.0.1 (keep-alive, like a gateway), for the relay tests.
import { Agent, request } from 'node:http';

export interface RelayAnswer {
  readonly status: number;
  readonly json: unknown;
  readonly headers: Record<string, string | string[] | undefined>;
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export function relayRequest(base: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}, timeoutMs = 20_000): Promise<RelayAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request(url, { method, agent, timeout: timeoutMs, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json: unknown = null;
        if (text !== '') {
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
        }
        resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
