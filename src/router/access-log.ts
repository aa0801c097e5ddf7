// The access log (`accessLog: true`): one JSON line per request at response close, from the
// exchange the proxy already keeps, with the request id (the client's sane `x-request-id`, or
// a generated one; sent upstream too). The user id never appears: `user` is a keyed hash
// (HMAC-SHA256 with `accessLogUserKey`, or a random key per process), the query string is
// left out (it may carry the user id or tokens) and a `path` user-id source's segment is
// written as `:user`. When off, the proxy holds null and does nothing per request.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { GatewayConfig } from './config';
import type { Exchange } from './exchange';
import type { Logger } from './log';

/** User hashes remembered (users repeat); the memo is emptied when full, so it stays bounded. */
const MAX_REMEMBERED_USERS = 10_000;

/** Longest client-sent request id kept (Envoy and nginx ids are 32-36 characters). */
export const MAX_REQUEST_ID_LENGTH = 128;

/** Printable ASCII, no spaces, bounded: anything else is replaced by a generated id. */
export function saneRequestId(value: string | string[] | undefined): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_REQUEST_ID_LENGTH) return null;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return null;
  }
  return value;
}

export class AccessLog {
  private readonly key: Buffer;
  private readonly userPatterns: readonly (readonly string[])[];
  private readonly hashes = new Map<string, string>();

  constructor(private readonly logger: Logger, config: GatewayConfig) {
    this.key = config.accessLogUserKey !== null ? Buffer.from(config.accessLogUserKey, 'utf8') : randomBytes(32);
    this.userPatterns = config.userId.sources.flatMap((s) => ('path' in s ? [s.path.split('/')] : []));
  }

  /** The exchange's request id, decided once: the client's when sane, else a new UUID. */
  requestId(ex: Exchange, header: string | string[] | undefined): string {
    return (ex.requestId ??= saneRequestId(header) ?? randomUUID());
  }

  /** The keyed hash that stands for a user id in the log (16 hex digits). */
  userHash(user: string): string {
    let hash = this.hashes.get(user);
    if (hash === undefined) {
      hash = createHmac('sha256', this.key).update(user, 'utf8').digest('hex').slice(0, 16);
      if (this.hashes.size >= MAX_REMEMBERED_USERS) this.hashes.clear();
      this.hashes.set(user, hash);
    }
    return hash;
  }

  write(ex: Exchange, req: IncomingMessage, status: number, seconds: number): void {
    this.logger.info({
      requestId: this.requestId(ex, req.headers['x-request-id']),
      method: req.method,
      path: this.loggedPath(req.url ?? '/'),
      status,
      class: ex.cls,
      zone: ex.zone,
      service: ex.service,
      cell: ex.route?.cell ?? null,
      upstream: ex.endpoint?.origin ?? null,
      durationMs: Math.round(seconds * 1e6) / 1e3,
      user: ex.user === null ? null : this.userHash(ex.user),
    });
  }

  /** The path without its query, a `path` user-id source's user segment as `:user`. */
  private loggedPath(url: string): string {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (this.userPatterns.length === 0) return path;
    const segments = path.split('/');
    for (const pattern of this.userPatterns) {
      if (segments.length < pattern.length) continue;
      if (pattern.every((p, i) => p === ':user' || p === segments[i])) {
        return segments.map((s, i) => (pattern[i] === ':user' ? ':user' : s)).join('/');
      }
    }
    return path;
  }
}
