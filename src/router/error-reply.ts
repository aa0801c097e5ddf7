// Error replies of the request path: the contract's JSON `{error, message}` with the
// status from src/errors.ts, and `Retry-After` on 503s. Bodies are fixed texts made once,
// or (502 UPSTREAM_UNAVAILABLE) name the zone and the service from the table: nothing from
// the request, an upstream's address or a stack trace ever reaches a client.
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

/**
 * A contract error whose message is made by the gateway from names it holds (a zone, a
 * service: validated names from the table and the configuration), never from the request.
 */
export function sendErrorWithMessage(reply: FastifyReply, name: ErrorName, message: string): FastifyReply {
  const status = errorSpec(name).status;
  reply.code(status).header('content-type', 'application/json; charset=utf-8');
  if (status === 503) reply.header('retry-after', RETRY_AFTER_SECONDS);
  return reply.send(JSON.stringify({ error: name, message }));
}

/** 502 UPSTREAM_UNAVAILABLE naming the zone and the service that had no endpoint to give. */
export function sendUnavailable(reply: FastifyReply, zone: string, service: string, endpoints: number): FastifyReply {
  const message = endpoints === 0
    ? `zone ${zone} has no endpoint of service ${service}`
    : `no endpoint of service ${service} in zone ${zone} is available`;
  return sendErrorWithMessage(reply, 'UPSTREAM_UNAVAILABLE', message);
}
