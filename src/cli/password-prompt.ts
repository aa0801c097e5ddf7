// Asks for the etcd password on a terminal, as etcdctl does for `--user NAME`: the typed
// characters are not echoed (the terminal is in raw mode while it is read).
import { cgError } from '../errors';

export function promptPassword(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    // Echo off first, then the prompt: whatever is typed after the prompt shows is not echoed.
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    output.write(question);
    input.setEncoding('utf8');
    input.resume();
    let typed = '';
    const finish = (err: Error | null) => {
      input.setRawMode(wasRaw);
      input.pause();
      input.off('data', onData);
      output.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n' || c === '\u0004') return finish(null);
        if (c === '\u0003') return finish(cgError('USAGE', 'cancelled at the password prompt'));
        if (c === '\u007f' || c === '\b') typed = typed.slice(0, -1);
        else typed += c;
      }
    };
    input.on('data', onData);
  });
}
