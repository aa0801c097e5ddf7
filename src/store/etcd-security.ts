// How the etcd store proves who it is and checks whom it talks to: TLS (a CA to trust, and
// a client certificate for etcd's --client-cert-auth) and etcd's own user/password. The
// files are read once, when the store is opened, so a missing file stops the command
// before it talks to anyone. The password never appears in any message.
import { readFileSync } from 'node:fs';
import { cgError } from '../errors';

export interface EtcdSecurity {
  /** PEM file of the CA that signed etcd's server certificate (default: the system's roots). */
  readonly cacert?: string;
  /** PEM client certificate and its key, for an etcd started with --client-cert-auth. */
  readonly cert?: string;
  readonly key?: string;
  /** etcd user; with auth enabled in etcd, every call is made as this user. */
  readonly user?: string;
  readonly password?: string;
}

export interface ResolvedEtcdSecurity {
  readonly tls: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer } | null;
  readonly auth: { readonly user: string; readonly password: string } | null;
  /** The endpoints as URLs, http:// or https://. */
  readonly urls: readonly string[];
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw cgError('USAGE', `cannot read the etcd ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads the TLS files and checks the combination. With TLS options, a bare host:port
 * endpoint means https:// (as etcdctl does); an explicit http:// with TLS options is refused
 * rather than silently sent in clear text.
 */
export function resolveEtcdSecurity(s: EtcdSecurity, endpoints: readonly string[]): ResolvedEtcdSecurity {
  if ((s.cert === undefined) !== (s.key === undefined)) {
    throw cgError('USAGE', 'an etcd client certificate needs its key: give both --etcd-cert FILE and --etcd-key FILE');
  }
  const wantsTls = s.cacert !== undefined || s.cert !== undefined;
  const tls = wantsTls
    ? {
      ...(s.cacert !== undefined ? { ca: readPem(s.cacert, 'CA certificate (--etcd-cacert)') } : {}),
      ...(s.cert !== undefined ? { cert: readPem(s.cert, 'client certificate (--etcd-cert)') } : {}),
      ...(s.key !== undefined ? { key: readPem(s.key, 'client key (--etcd-key)') } : {}),
    }
    : null;
  const secure = tls !== null || endpoints.some((e) => e.startsWith('https://'));
  const urls = endpoints.map((e) => {
    if (/^https?:\/\//.test(e)) {
      if (secure && e.startsWith('http://')) throw cgError('USAGE', `etcd endpoint ${e} is plain http but TLS is configured: use https://`);
      return e;
    }
    return `${secure ? 'https' : 'http'}://${e}`;
  });
  let auth: ResolvedEtcdSecurity['auth'] = null;
  if (s.user !== undefined) {
    if (s.user === '') throw cgError('USAGE', 'the etcd user name is empty');
    if (s.password === undefined) {
      throw cgError('USAGE', `etcd user ${s.user} has no password: give --etcd-user ${s.user}:PASSWORD or set CELLGATE_ETCD_PASSWORD`);
    }
    auth = { user: s.user, password: s.password };
  } else if (s.password !== undefined) {
    throw cgError('USAGE', 'an etcd password without a user: give --etcd-user NAME (or CELLGATE_ETCD_USER)');
  }
  return { tls, auth, urls };
}
