// What every long-running cellgate command shares: JSON log lines on stderr, and a clean
// stop on SIGTERM/SIGINT (a second signal exits at once).

export function logLine(fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

/** Stops `stop` once on SIGTERM/SIGINT; a second signal exits at once. */
export function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) {
      process.stderr.write(`cellgate: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(() => process.exit(0), (err) => {
      process.stderr.write(`cellgate: shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}
