// The benches' own flags (`npm run bench NAME -- --gateways 200`): plain, never shown to operators.

/** The word after `--name`, or undefined when the flag is absent. */
export function flagValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** `--name N`, an integer in [min, max]; `dflt` when absent. */
export function intFlag(argv: readonly string[], name: string, dflt: number, min: number, max: number): number {
  const raw = flagValue(argv, name);
  const v = raw === undefined ? dflt : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} must be an integer in [${min}, ${max}], got ${raw}`);
  return v;
}
