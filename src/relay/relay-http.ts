// The relay's HTTP face (node:http, keep-alive): PUT and DELETE /v1/gateways/<id>, GET
// /healthz. It checks the bearer token (before reading a body), bounds the body, validates
// the record, and answers with the contract's JSON errors; what a request waits for is the
// core's (index.ts). Small on purpose: it takes one request per gateway per table version.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { cgError, isCellgateError, type CellgateError } from '../errors';
import { decodePresence } from '../store/presence-record';
import type { PresenceRecord } from '../store/types';
import type { Outcome } from './relay-entries';

export const MAX_BODY_BYTES = 64 * 1024;
/** Bound on a gateway's ttlSeconds: an entry of a vanished gateway is gone within this long. */
export const MAX_GATEWAY_TTL_SECONDS = 3600;
const GATEWAY_PATH = '/v1/gateways/';
/** Longer than a gateway's heartbeat period (ttl/3), so its connection is reused. */
const KEEP_ALIVE_MS = 65_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface RelayApi {
  put(id: string, record: PresenceRecord, ttlSeconds: number): Outcome;
  remove(id: string): Outcome;
  health(): { readonly ok: boolean; readonly gateways: number };
}

export function createRelayServer(api: RelayApi, token: string | null): Server {
  const expected = token === null ? null : digest(token);
  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_MS, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    handle(api, expected, req, res).catch((err: unknown) => sendError(res, isCellgateError(err) ? err : cgError('INTERNAL_ERROR', (err as Error).message)));
  });
  // A client that sends something that is not HTTP gets the contract's JSON, like the gateway's.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end(errorResponse(cgError('BAD_REQUEST', 'malformed HTTP request')));
    socket.destroy();
  });
  return server;
}

async function handle(api: RelayApi, tokenDigest: Buffer | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  if (url === '/healthz' && req.method === 'GET') {
    const h = api.health();
    return sendJson(res, h.ok ? 200 : 503, h);
  }
  if (tokenDigest !== null && !authorized(req.headers.authorization, tokenDigest)) {
    return sendError(res, cgError('UNAUTHORIZED', 'this relay wants Authorization: Bearer <its token>'), !req.complete);
  }
  if (!url.startsWith(GATEWAY_PATH) || (req.method !== 'PUT' && req.method !== 'DELETE')) {
    return sendError(res, cgError('NOT_FOUND', `no route ${req.method ?? ''} ${url.split('?')[0]}: use PUT or DELETE ${GATEWAY_PATH}<id>, GET /healthz`), !req.complete);
  }
  const id = gatewayId(url.slice(GATEWAY_PATH.length));
  if (req.method === 'DELETE') {
    req.resume();
    return answer(res, api.remove(id));
  }
  const body = await readBody(req);
  const { record, ttlSeconds } = parsePut(body, id);
  return answer(res, api.put(id, record, ttlSeconds));
}

function authorized(header: string | undefined, tokenDigest: Buffer): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  // Digests have one length, which timingSafeEqual needs: the time says nothing about the token.
  return m !== null && timingSafeEqual(digest(m[1]!), tokenDigest);
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

function gatewayId(encoded: string): string {
  let id: string;
  const segment = encoded.split('?')[0]!;
  if (segment.includes('/')) throw cgError('BAD_REQUEST', 'the gateway id in the path must be one segment, encoded with encodeURIComponent');
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw cgError('BAD_REQUEST', 'the gateway id in the path is not percent-encoded UTF-8');
  }
  if (id.length === 0 || id.length > 200) throw cgError('BAD_REQUEST', 'a gateway id is 1-200 characters, encoded with encodeURIComponent');
  return id;
}

function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const tooLarge = () => cgError('BODY_TOO_LARGE', `a presence body is at most ${MAX_BODY_BYTES} bytes`);

function parsePut(body: string, id: string): { record: PresenceRecord; ttlSeconds: number } {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw cgError('BAD_REQUEST', 'the body is not JSON: want {"record": PresenceRecord, "ttlSeconds": N}');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw cgError('BAD_REQUEST', 'the body is not a JSON object: want {"record": PresenceRecord, "ttlSeconds": N}');
  const { record, ttlSeconds } = doc as { record?: unknown; ttlSeconds?: unknown };
  if (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_GATEWAY_TTL_SECONDS) {
    throw cgError('BAD_REQUEST', `ttlSeconds must be an integer in [1, ${MAX_GATEWAY_TTL_SECONDS}]`);
  }
  const decoded = decodePresence(record, id);
  if (!decoded.ok) throw cgError('BAD_REQUEST', `bad presence record: ${decoded.malformed.problem}`);
  return { record: decoded.record, ttlSeconds };
}

async function answer(res: ServerResponse, outcome: Outcome): Promise<void> {
  const err = outcome.kind === 'now' ? null : await outcome.answer;
  if (err) return sendError(res, err);
  res.writeHead(204).end();
}

function errorResponse(err: CellgateError): string {
  const body = JSON.stringify(err.toJSON());
  return `HTTP/1.1 ${err.status} ${err.error}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** `close`: the request's body was not read; the connection cannot carry another request. */
function sendError(res: ServerResponse, err: CellgateError, close = false): void {
  if (res.headersSent) return;
  const headers: Record<string, string> = err.status === 503 ? { 'retry-after': '1' } : {};
  if (close || err.error === 'BODY_TOO_LARGE') headers.connection = 'close';
  sendJson(res, err.status, err.toJSON(), headers);
}

function sendJson(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}
