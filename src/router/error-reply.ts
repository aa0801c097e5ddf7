// Error replies of the request path: the contract's JSON `{error, message}` with the
// status from src/errors.ts, and `Retry-After` on 503s. Bodies are fixed texts made once:
// nothing from the request, an upstream's address or a stack trace ever reaches a client.
import type { FastifyReply } from 'fastify';
import { type ErrorName, ERROR_NAMES, errorSpec } from '../errors';

/** Seconds a client is told to wait before retrying a 503 (a table change is usually quick). */
export const RETRY_AFTER_SECONDS = '1';

const BODIES: ReadonlyMap<ErrorName, string> = new Map(
  ERROR_NAMES.map((name) => [name, JSON.stringify({ error: name, message: errorSpec(name).message })]),
);

export function errorBody(name: ErrorName): string {
  return BODIES.get(name) as string;
}

export function sendError(reply: FastifyReply, name: ErrorName): FastifyReply {
  const status = errorSpec(name).status;
  reply.code(status).header('content-type', 'application/json; charset=utf-8');
  if (status === 503) reply.header('retry-after', RETRY_AFTER_SECONDS);
  return reply.send(errorBody(name));
}
