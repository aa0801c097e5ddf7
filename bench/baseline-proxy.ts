// The benchmarks' baseline: plain @fastify/http-proxy in front of one static upstream, with
// its defaults (the same reply-from/undici pool settings the gateway uses: 128 connections,
// no pipelining) and logging off, as the gateway has it. No routing, no headers, no metrics.
//   node dist/bench/baseline-proxy.js --upstream http://127.0.0.1:PORT
// Prints {"event":"listening","port":N} on stdout once listening on 127.0.0.1 (a free port).
import type { AddressInfo } from 'node:net';
import fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--upstream');
  const upstream = i >= 0 ? process.argv[i + 1] : undefined;
  if (!upstream) throw new Error('usage: baseline-proxy --upstream http://HOST:PORT');
  const app = fastify({ logger: false });
  await app.register(httpProxy, { upstream, disableRequestLogging: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: (app.server.address() as AddressInfo).port })}\n`);
  process.on('SIGTERM', () => {
    app.close().then(() => process.exit(0), () => process.exit(1));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
