// One string names a store everywhere (cellctl --etcd/--file, cellgate --store):
// `file:PATH` or `etcd:HOST:PORT[,HOST:PORT...]`.
import { cgError } from '../errors';
import type { EtcdStoreOptions } from './etcd-store';
import { createFileStore, type FileStoreOptions } from './file-store';
import type { TableStore } from './types';

export interface OpenStoreOptions {
  /** etcd key prefix (default /cellgate). */
  readonly prefix?: string;
  readonly file?: FileStoreOptions;
  readonly etcd?: Omit<EtcdStoreOptions, 'endpoints' | 'prefix'>;
}

export type StoreSpec = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'etcd'; readonly endpoints: string[] };

const USAGE = 'use file:PATH or etcd:HOST:PORT[,HOST:PORT...]';

export function parseStoreSpec(spec: string): StoreSpec {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? '' : spec.slice(0, colon);
  const rest = spec.slice(colon + 1).trim();
  if (kind === 'file') {
    if (rest === '') throw cgError('USAGE', `store "${spec}" names no file: ${USAGE}`);
    return { kind, path: rest };
  }
  if (kind === 'etcd') {
    const endpoints = rest.split(',').map((e) => e.trim()).filter((e) => e !== '');
    if (endpoints.length === 0) throw cgError('USAGE', `store "${spec}" names no etcd endpoint: ${USAGE}`);
    for (const e of endpoints) {
      const port = Number(/:(\d+)$/.exec(e)?.[1]);
      if (!(port >= 1 && port <= 65535)) throw cgError('USAGE', `bad etcd endpoint "${e}" in store "${spec}": expected HOST:PORT`);
    }
    return { kind, endpoints };
  }
  throw cgError('USAGE', `unknown store "${spec}": ${USAGE}`);
}

export function openStore(spec: string, opts: OpenStoreOptions = {}): TableStore {
  const parsed = parseStoreSpec(spec);
  switch (parsed.kind) {
    case 'file':
      return createFileStore(parsed.path, opts.file);
    case 'etcd':
    {
      // Loaded on demand: etcd3 and gRPC take ~300 ms to load, which every `cellctl --file`
      // and `--help` would otherwise pay.
      const { createEtcdStore } = require('./etcd-store') as typeof import('./etcd-store');
      return createEtcdStore({ ...opts.etcd, endpoints: parsed.endpoints, prefix: opts.prefix });
    }
    default: {
      const never: never = parsed;
      throw cgError('USAGE', `unknown store ${JSON.stringify(never)}`);
    }
  }
}
