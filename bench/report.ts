// A tiny report printer for the benchmarks: one aligned line per figure,
//   name                                  value  unit        (ratio vs baseline)  [bar]
// and the figures kept in `results` so a caller can also print them as JSON.

export interface Figure {
  readonly section: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** The baseline's value in the same unit, measured in the same run. */
  readonly baseline?: { readonly name: string; readonly value: number };
  /** The target this figure must meet. */
  readonly bar?: { readonly min?: number; readonly max?: number };
  readonly note?: string;
}

const NAME_WIDTH = 46;
const VALUE_WIDTH = 14;
const UNIT_WIDTH = 10;

export function formatNumber(value: number): string {
  if (Number.isInteger(value) || Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

export class Report {
  readonly results: Figure[] = [];
  private current = '';

  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  section(title: string): void {
    this.current = title;
    this.write(`\n== ${title}`);
  }

  note(text: string): void {
    this.write(`   ${text}`);
  }

  line(name: string, value: number, unit: string, extra: Omit<Figure, 'section' | 'name' | 'value' | 'unit'> = {}): Figure {
    const figure: Figure = { section: this.current, name, value, unit, ...extra };
    this.results.push(figure);
    let text = `   ${name.padEnd(NAME_WIDTH)} ${formatNumber(value).padStart(VALUE_WIDTH)}  ${unit.padEnd(UNIT_WIDTH)}`;
    if (extra.baseline) text += `  (${(value / extra.baseline.value).toFixed(2)}x ${extra.baseline.name})`;
    if (extra.bar) text += `  [${barText(extra.bar, unit)}: ${meetsBar(figure) ? 'met' : 'NOT MET'}]`;
    if (extra.note) text += `  ${extra.note}`;
    this.write(text.trimEnd());
    return figure;
  }

  /** Figures that have a bar and miss it. */
  failures(): Figure[] {
    return this.results.filter((f) => f.bar && !meetsBar(f));
  }
}

function barText(bar: NonNullable<Figure['bar']>, unit: string): string {
  const parts: string[] = [];
  if (bar.min !== undefined) parts.push(`bar >= ${formatNumber(bar.min)} ${unit}`);
  if (bar.max !== undefined) parts.push(`bar <= ${formatNumber(bar.max)} ${unit}`);
  return parts.join(', ');
}

export function meetsBar(figure: Figure): boolean {
  const { bar, value } = figure;
  if (!bar) return true;
  return (bar.min === undefined || value >= bar.min) && (bar.max === undefined || value <= bar.max);
}
