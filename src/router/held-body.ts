// The body of a held request (a frozen cell), kept in memory so that it can be sent once,
// intact, after the release — and bounded, so that holding cannot exhaust memory: per
// request by `maxBytes`, over all held requests by the buffer's ByteBudget (below).
// A body refused half-way is not read into memory any further: the rest is discarded as it
// arrives (nginx's "lingering" read), so the client still sees the answer and the connection
// stays usable.
import type { Readable } from 'node:stream';

/**
 * The bytes of held bodies, over all held requests. A request reserves what its body needs
 * (its Content-Length up front, then chunk by chunk) and frees it once its body is gone
 * (refused, or sent and answered); a reservation that does not fit is refused.
 */
export class ByteBudget {
  readonly max: number;
  used = 0;
  /** The most ever in use at once (what the byte bound is tested on). */
  peak = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Takes `n` more bytes; false (and nothing taken) when they do not fit. */
  tryTake(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }

  /** One request's share: grows to what it needs, freed once (idempotent). */
  reservation(): BodyReservation {
    let held = 0;
    let open = true;
    return {
      reserve: (total) => {
        if (!open) return false;
        if (total <= held) return true;
        if (!this.tryTake(total - held)) return false;
        held = total;
        return true;
      },
      free: () => {
        if (!open) return;
        open = false;
        this.give(held);
        held = 0;
      },
    };
  }
}

export interface BodyReservation {
  /** Makes this request's share at least `total` bytes; false when that does not fit (or it was freed). */
  reserve(total: number): boolean;
  free(): void;
}

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
