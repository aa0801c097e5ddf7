// The body of a held request (a frozen cell), kept in memory so that it can be sent once,
// intact, after the release — and bounded, so that holding cannot exhaust memory.
import type { Readable } from 'node:stream';

export type HeldBody = Buffer[] | 'tooLarge' | 'failed';

export const EMPTY_BODY: Buffer[] = [];

/** Reads a held request's body into memory, up to `maxBytes`. */
export function readHeldBody(stream: Readable, maxBytes: number): Promise<HeldBody> {
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
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        stream.pause();
        finish('tooLarge');
        return;
      }
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
