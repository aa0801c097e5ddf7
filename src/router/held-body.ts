// The body of a held request (a frozen cell), kept in memory so that it can be sent once,
// intact, after the release — and bounded, so that holding cannot exhaust memory: per
// request by `maxBytes`, over all held requests by the buffer's ByteBudget (`reservation`).
// A body refused half-way is not read into memory any further: the rest is discarded as it
// arrives (nginx's "lingering" read), so the client still sees the answer and the connection
// stays usable.
import type { Readable } from 'node:stream';
import type { BodyReservation } from './hold-buffer';

export type HeldBody = Buffer[] | 'tooLarge' | 'overBudget' | 'failed';

export const EMPTY_BODY: Buffer[] = [];

/** The request's declared Content-Length; null when it has none (chunked) or it is not a number. */
export function declaredLength(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

/** Reads a held request's body into memory, up to `maxBytes`, taking its bytes from `reservation`. */
export function readHeldBody(stream: Readable, maxBytes: number, reservation: BodyReservation): Promise<HeldBody> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    const finish = (result: HeldBody): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onFailed);
      stream.off('close', onClose);
      resolve(result);
    };
    const refuse = (result: 'tooLarge' | 'overBudget'): void => {
      chunks.length = 0;
      finish(result);
      // No 'data' listener is left: a flowing stream now drops what still arrives.
      stream.on('error', () => undefined);
      stream.resume();
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) return refuse('tooLarge');
      if (!reservation.reserve(size)) return refuse('overBudget');
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      ended = true;
      finish(chunks);
    };
    const onFailed = (): void => finish('failed');
    const onClose = (): void => {
      if (!ended) finish('failed');
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onFailed);
    stream.once('close', onClose);
  });
}
