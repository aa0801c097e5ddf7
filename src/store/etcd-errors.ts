// What went wrong talking to etcd, in words an operator can act on. The client library's
// errors name its internals (GRPCUnavailableError, MemberCoolingDownError, "No connection
// established"); these are read once here, at the store boundary, and never shown raw.
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError, EtcdPermissionDeniedError, GRPCUnauthenticatedError,
} from 'etcd3';

export type EtcdFailure = 'certificate' | 'authentication' | 'permission' | 'unreachable' | 'other';

export interface EtcdFailureContext {
  /** What the store was doing ("load table"). */
  readonly what: string;
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly user?: string;
  /** What a TLS probe found wrong with the endpoint's certificates (diagnoseTls). */
  readonly tlsProblem?: string | null;
  /** A plain endpoint whose server wants TLS. */
  readonly wantsTls?: boolean;
  /** The command's flag for the etcd endpoints (default --etcd, cellctl's). */
  readonly flagHint?: string;
}

/** The error and its causes (the breaker's cooling-down error carries the member's last failure). */
function chain(err: unknown): Error[] {
  const found: Error[] = [];
  for (let e = err; e instanceof Error && found.length < 5; e = e.cause) found.push(e);
  return found;
}

// TLS failures reach us as gRPC UNAVAILABLE whose text carries OpenSSL's or Node's words.
const CERTIFICATE = /certificate|self[- ]signed|unable to (get|verify)|x509|ssl|tls|handshake|CERT_|ERR_TLS|wrong version number/i;

export function classifyEtcdError(err: unknown): EtcdFailure {
  const errors = chain(err);
  if (errors.some((e) => e instanceof EtcdAuthenticationFailedError || e instanceof EtcdInvalidAuthTokenError)) return 'authentication';
  if (errors.some((e) => e instanceof EtcdPermissionDeniedError)) return 'permission';
  if (errors.some((e) => e instanceof GRPCUnauthenticatedError || /user name is empty|authentication/i.test(e.message))) return 'authentication';
  if (errors.some((e) => CERTIFICATE.test(e.message))) return 'certificate';
  if (errors.some((e) => /unavailable|no connection|ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|deadline|cooling|failed repeatedly/i.test(`${e.name} ${e.message}`))) {
    return 'unreachable';
  }
  return 'other';
}

/** The underlying TLS complaint, e.g. "unable to verify the first certificate". */
function tlsDetail(err: unknown): string {
  for (const e of chain(err)) {
    const m = /(?:Error: )?([^:]*(?:certificate|self[- ]signed|handshake|alert)[^.;\n]*)/i.exec(e.message);
    if (m) return m[1].trim();
  }
  return 'the TLS handshake failed';
}

export function explainEtcdError(err: unknown, ctx: EtcdFailureContext): { reason: EtcdFailure; message: string } {
  const at = ctx.endpoints.join(',');
  const found = classifyEtcdError(err);
  const reason = (found === 'unreachable' || found === 'certificate') && ctx.tlsProblem ? 'certificate' : found;
  switch (reason) {
    case 'certificate':
      if (ctx.tlsProblem === NOT_TLS) return { reason, message: `TLS problem talking to etcd at ${at}: ${NOT_TLS}` };
      return {
        reason,
        message: `certificate problem talking to etcd at ${at}: ${ctx.tlsProblem ?? tlsDetail(err)} (check --etcd-cacert, and --etcd-cert/--etcd-key if etcd requires client certificates)`,
      };
    case 'authentication':
      return {
        reason,
        message: `etcd at ${at} refused authentication${ctx.user ? ` for user ${ctx.user}` : ''}: wrong user name or password (check --etcd-user / CELLGATE_ETCD_PASSWORD)`,
      };
    case 'permission':
      if (!ctx.user) {
        return { reason: 'authentication', message: `etcd at ${at} has authentication enabled and no user was given: give --etcd-user NAME[:PASSWORD] (or CELLGATE_ETCD_USER)` };
      }
      return {
        reason,
        message: `etcd at ${at} denied ${ctx.what}: user ${ctx.user ?? '(none)'} has no permission on ${ctx.prefix}/ (grant its role readwrite on that prefix)`,
      };
    case 'unreachable':
      if (ctx.wantsTls) {
        return { reason: 'certificate', message: `etcd at ${at} requires TLS: use https://${ctx.endpoints[0]?.replace(/^https?:\/\//, '') ?? 'HOST:PORT'} with --etcd-cacert FILE (and --etcd-cert/--etcd-key for client certificates)` };
      }
      return { reason, message: `cannot reach etcd at ${at} (is it running? check ${ctx.flagHint ?? '--etcd'}): ${ctx.what} failed` };
    case 'other': {
      const e = err instanceof Error ? err : new Error(String(err));
      return { reason, message: `etcd ${ctx.what} failed at ${at}: ${e.message}` };
    }
    default: {
      const never: never = reason;
      return never;
    }
  }
}

/** OpenSSL's "error:0A000412:SSL routines:…:ssl/tls alert bad certificate:…" as words. */
function tlsWords(message: string): string {
  const alert = /alert ([a-z ]+?)(?::|$)/i.exec(message);
  if (alert) return `etcd refused the TLS connection (alert: ${alert[1]}); it may require a client certificate signed by its CA`;
  return message;
}

const PROBE_TIMEOUT_MS = 2_000;
// The HTTP/2 connection preface: a TLS server that rejects our client certificate says so
// (TLS 1.3 alert) only once the client has sent something.
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * gRPC reports every failed TLS handshake as "No connection established", without the
 * reason. When a call found etcd unreachable over TLS, one direct TLS connection with the
 * same files tells a certificate problem (untrusted server, client certificate refused)
 * from an etcd that is not there. Null when the TLS handshake works, or TCP does not.
 */
export function diagnoseTls(url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<string | null> {
  return probeTls(url, { ca: tls.ca, cert: tls.cert, key: tls.key }).then((r) => {
    switch (r.kind) {
      case 'untrusted':
      case 'refused':
        return r.detail;
      case 'not-tls':
        return NOT_TLS;
      default:
        return null;
    }
  });
}

const NOT_TLS = 'the server closed the connection during the TLS handshake: it does not seem to speak TLS (is it an http:// endpoint?)';

/** For a plain http:// endpoint that gRPC could not use: does the server want TLS? */
export async function plainEndpointWantsTls(url: string): Promise<boolean> {
  const r = await probeTls(url.replace(/^http:/, 'https:'), { rejectUnauthorized: false });
  return r.kind === 'ok' || r.kind === 'refused';
}

type ProbeResult =
  | { kind: 'ok' | 'no-tcp' | 'not-tls' | 'timeout' }
  | { kind: 'untrusted' | 'refused'; detail: string };

/** One TLS connection with these options: what happened, by stage (TCP, handshake, first bytes). */
function probeTls(url: string, options: ConnectionOptions): Promise<ProbeResult> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    let settled = false;
    let tcp = false;
    let secure = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const socket = tlsConnect({ ...options, host, port: Number(port), ALPNProtocols: ['h2'], ...(isIP(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => done({ kind: 'timeout' }), PROBE_TIMEOUT_MS);
    socket.once('connect', () => { tcp = true; });
    socket.once('secureConnect', () => {
      secure = true;
      if (options.rejectUnauthorized !== false && !socket.authorized) {
        return done({ kind: 'untrusted', detail: String(socket.authorizationError ?? 'the server certificate is not trusted') });
      }
      socket.write(H2_PREFACE);
    });
    socket.once('data', () => done({ kind: 'ok' })); // the server's SETTINGS: TLS is fine
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!tcp) return done({ kind: 'no-tcp' });
      if (/alert|certificate/i.test(err.message)) return done({ kind: 'refused', detail: tlsWords(err.message) });
      if (!secure) return done({ kind: 'not-tls' });
      done({ kind: 'refused', detail: tlsWords(err.message) });
    });
    socket.once('close', () => done(secure ? { kind: 'ok' } : tcp ? { kind: 'not-tls' } : { kind: 'no-tcp' }));
  });
}
