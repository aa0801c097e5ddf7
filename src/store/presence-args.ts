// What both stores accept from a gateway registering itself.
import { cgError } from '../errors';
import type { PresenceRecord } from './types';

export const DEFAULT_PRESENCE_TTL_SECONDS = 10;

export function checkPresenceArgs(record: PresenceRecord, ttlSeconds: number): void {
  if (typeof record.id !== 'string' || record.id.length === 0 || record.id.length > 200) {
    throw cgError('USAGE', 'a gateway id must be 1-200 characters');
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw cgError('USAGE', `presence TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
}
