// Waiting on a condition in tests (never a bare sleep as synchronisation): `check` is tried
// until it holds, bounded by a deadline that fails the test with what was awaited.
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The value of one sample in Prometheus text, e.g. metricValue(text, 'cellgate_x_total{reason="a"}'); null when absent. */
export function metricValue(text: string, sample: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return null;
}
