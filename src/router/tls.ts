// TLS on the traffic port (`tls: {cert, key}`, PEM files): read before the server is made,
// and again on SIGHUP (reload), when the new pair is checked before it replaces the old one
// for new connections (server.setSecureContext); a bad pair is logged and the old one stays,
// as nginx keeps its old configuration when a reload fails.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { type Server as TlsServer, createSecureContext } from 'node:tls';
import { cgError } from '../errors';
import type { TlsConfig } from './config';
import type { Logger } from './log';

export interface PemPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export class TrafficTls {
  constructor(private readonly config: TlsConfig, private readonly logger: Logger) {}

  /** The pair the server starts with; INVALID_CONFIG naming tls.cert / tls.key when unusable. */
  initial(): PemPair {
    return readPemPairSync(this.config);
  }

  /** Serves the files' current pair to new connections; rejects (old pair kept) when it is unusable. */
  async reload(server: Server): Promise<void> {
    try {
      const pair = { cert: await readFile(this.config.cert), key: await readFile(this.config.key) };
      createSecureContext(pair); // throws on a bad or mismatched pair
      (server as unknown as TlsServer).setSecureContext(pair);
      this.logger.info({ event: 'tls.reloaded', cert: this.config.cert });
    } catch (err) {
      this.logger.error({ event: 'tls.reload_failed', cert: this.config.cert, error: (err as Error).message });
      throw err;
    }
  }
}

/** Reads and checks a PEM pair (also what `serve --check` runs). */
export function readPemPairSync(config: TlsConfig): PemPair {
  const read = (path: string, key: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw cgError('INVALID_CONFIG', `invalid gateway configuration: tls.${key}: cannot read ${path}: ${(err as Error).message}`, {
        cause: err, detail: [{ path: `tls.${key}`, message: `cannot read ${path}` }],
      });
    }
  };
  const pair = { cert: read(config.cert, 'cert'), key: read(config.key, 'key') };
  try {
    createSecureContext(pair);
  } catch (err) {
    throw cgError('INVALID_CONFIG', `invalid gateway configuration: tls: ${config.cert} and ${config.key} are not a usable PEM certificate and key: ${(err as Error).message}`, {
      cause: err, detail: [{ path: 'tls', message: (err as Error).message }],
    });
  }
  return pair;
}
