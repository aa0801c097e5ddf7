// report.html: one self-contained page (inline CSS and SVG, no scripts, no network) that a
// person can open after a drill: a summary, and per scenario its invariants, figures and a
// timeline chart — requests/s served by each zone, failed requests/s, and markers for
// faults (red), heals (green), operator actions (blue span: start to exit) and routing
// table revisions (purple ticks; hover for what changed).
import type { Marker, Timeline } from './figures';
import type { SuiteReport } from './run';
import type { ScenarioReport } from './runner';

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#17becf', '#bcbd22', '#7f7f7f'];
const MARK_COLOR: Record<Marker['kind'], string> = { fault: '#d62728', heal: '#2ca02c', op: '#1f5fbf', mark: '#555', table: '#8e44ad', 'bad-table': '#000', frozen: '#f0a30a' };

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
const ms = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${Math.round(v)} ms`);

function chart(tl: Timeline): string {
  const W = 960;
  const H = 300;
  const L = 48;
  const R = 52;
  const T = 70;
  const B = 30;
  const pw = W - L - R;
  const ph = H - T - B;
  const zones = Object.keys(tl.zones).sort();
  const n = tl.errors.length;
  let ymax = 1;
  for (let i = 0; i < n; i++) {
    ymax = Math.max(ymax, tl.errors[i]!, ...zones.map((z) => tl.zones[z]![i]!));
  }
  ymax = Math.ceil(ymax / 50) * 50;
  const x = (t: number) => L + (Math.max(0, Math.min(t, tl.durationMs)) / tl.durationMs) * pw;
  const y = (v: number) => T + ph - (v / ymax) * ph;
  const parts: string[] = [];
  // axes and grid
  for (let v = 0; v <= ymax; v += ymax / 5) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end" class="ax">${Math.round(v)}</text>`);
  }
  const step = tl.durationMs > 40_000 ? 10_000 : tl.durationMs > 15_000 ? 5_000 : 2_000;
  for (let t = 0; t <= tl.durationMs; t += step) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${T + ph}" y2="${T + ph + 4}" stroke="#999"/><text x="${x(t)}" y="${T + ph + 16}" text-anchor="middle" class="ax">${t / 1000}s</text>`);
  }
  parts.push(`<text x="12" y="${T + ph / 2}" transform="rotate(-90 12 ${T + ph / 2})" text-anchor="middle" class="ax">requests/s</text>`);
  // operator spans, under the data
  for (const m of tl.markers) {
    if (m.kind === 'op' && m.t1 !== undefined) {
      parts.push(`<rect x="${x(m.t)}" y="${T}" width="${Math.max(1, x(m.t1) - x(m.t))}" height="${ph}" fill="#1f5fbf" opacity="0.08"><title>${esc(m.label)} (${ms(m.t1 - m.t)})</title></rect>`);
    }
  }
  // errors as bars
  const bw = pw / n;
  tl.errors.forEach((v, i) => {
    if (v > 0) parts.push(`<rect x="${L + i * bw}" y="${y(v)}" width="${Math.max(1, bw - 0.5)}" height="${T + ph - y(v)}" fill="#d62728" opacity="0.75"><title>${i * tl.bucketMs / 1000}s: ${Math.round(v)} failed/s</title></rect>`);
  });
  // zones as lines
  zones.forEach((z, zi) => {
    const pts = tl.zones[z]!.map((v, i) => `${(L + (i + 0.5) * bw).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${PALETTE[zi % PALETTE.length]}" stroke-width="1.6"/>`);
  });
  // p99 latency on its own (right, log-ish) axis: 1 ms .. 10 s
  const lmax = 10_000;
  const ly = (v: number) => T + ph - (Math.log10(Math.max(1, v)) / Math.log10(lmax)) * ph;
  for (const v of [1, 10, 100, 1000, 10_000]) parts.push(`<text x="${W - R + 4}" y="${ly(v) + 4}" class="ax">${v >= 1000 ? `${v / 1000}s` : `${v}ms`}</text>`);
  parts.push(`<text x="${W - 8}" y="${T + ph / 2}" transform="rotate(90 ${W - 8} ${T + ph / 2})" text-anchor="middle" class="ax">p99 latency</text>`);
  const lat = tl.p99LatencyMs.map((v, i) => (v === null ? null : `${(L + (i + 0.5) * bw).toFixed(1)},${ly(v).toFixed(1)}`)).filter((p): p is string => p !== null).join(' ');
  if (lat) parts.push(`<polyline points="${lat}" fill="none" stroke="#999" stroke-width="1" stroke-dasharray="2 2"/>`);
  // markers
  let labelRow = 0;
  for (const m of tl.markers) {
    const c = MARK_COLOR[m.kind];
    if (m.kind === 'frozen') {
      parts.push(`<rect x="${x(m.t)}" y="${T + ph + 1}" width="${Math.max(2, x(m.t1 ?? m.t) - x(m.t))}" height="5" fill="${c}"><title>${esc(m.label)}</title></rect>`);
      continue;
    }
    if (m.kind === 'table' || m.kind === 'bad-table') {
      parts.push(`<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${T + ph - 10}" y2="${T + ph}" stroke="${c}" stroke-width="2"><title>${esc(m.label)}</title></line>`);
      parts.push(`<circle cx="${x(m.t)}" cy="${T + ph - 12}" r="3" fill="${m.kind === 'bad-table' ? '#fff' : c}" stroke="${c}"><title>${esc(m.label)}</title></circle>`);
      continue;
    }
    const dash = m.kind === 'op' ? '' : 'stroke-dasharray="4 3"';
    parts.push(`<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${T - 4}" y2="${T + ph}" stroke="${c}" ${dash} stroke-width="1.4"><title>${esc(m.label)}</title></line>`);
    const ly = 12 + (labelRow++ % 4) * 14;
    parts.push(`<text x="${x(m.t) + 3}" y="${ly}" class="mk" fill="${c}">${esc(m.label)}${m.ok === false ? ' ✗' : ''}</text>`);
    parts.push(`<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${ly + 3}" y2="${T - 4}" stroke="${c}" stroke-width="0.5" opacity="0.5"/>`);
  }
  const legend = [...zones.map((z, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(z)}</span>`),
    '<span><i style="background:#d62728"></i>failed</span>', '<span><i style="background:#d62728;height:2px"></i>fault</span>',
    '<span><i style="background:#2ca02c;height:2px"></i>heal</span>', '<span><i style="background:#1f5fbf;opacity:.3"></i>cellctl (start→exit)</span>',
    '<span><i style="background:#8e44ad;border-radius:50%"></i>table revision</span>', '<span><i style="background:#999;height:1px"></i>p99 latency (right axis)</span>', '<span><i style="background:#f0a30a"></i>cell frozen (requests held)</span>'].join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg><div class="legend">${legend}</div>`;
}

function figureRows(r: ScenarioReport): string {
  const f = r.figures;
  if (!f) return '<p>No figures: the scenario did not run.</p>';
  const rows: [string, string][] = [
    ['requests (sent / 200 / failed)', `${f.requests.sent} / ${f.requests.ok} / ${f.requests.failed}${f.requests.skipped ? ` (${f.requests.skipped} not sent: generator saturated)` : ''}; ${f.requests.posts} POSTs`],
    ['served by zone', Object.entries(f.requests.byZone).sort().map(([z, c]) => `${esc(z)} ${c}`).join(', ') || '–'],
    ['errors', Object.entries(f.requests.errors).map(([e, c]) => `${esc(e)} ×${c}`).join(', ') || 'none'],
    ['latency p50 / p99 / max', `${ms(f.latencyMs.p50)} / ${ms(f.latencyMs.p99)} / ${ms(f.latencyMs.max)}`],
    ['failover convergence (command start → all gateways applied)', ms(f.failoverConvergenceMs)],
    ['table apply lag (write → all live gateways), p50 / max', `${ms(f.tableApplyLagMs.p50)} / ${ms(f.tableApplyLagMs.max)} over ${f.tableApplyLagMs.revisions} revisions`],
    ['error window (first failed request sent → last failed answer)', ms(f.errorWindowMs)],
    ['longest held request (frozen cell)', `${ms(f.longestHeldMs)} (${f.heldRequests} held)`],
    ['stale routes fenced (421) in transition', String(f.fencedInTransition)],
  ];
  const ops = f.operations.map((o) => `<tr><td>${esc(o.label)}</td><td>${esc(o.exit)}</td><td>${ms(o.commandMs)}</td><td>${o.versionAfter ?? '–'}</td><td>${ms(o.convergedMs)}</td></tr>`).join('');
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('')}</table>`
    + (ops ? `<table><tr><th>cellctl</th><th>exit</th><th>took</th><th>revision</th><th>all gateways applied after</th></tr>${ops}</table>` : '');
}

function scenarioSection(r: ScenarioReport): string {
  const inv = r.invariants.map((i) => `<tr class="${i.passed ? 'ok' : 'bad'}"><td>${i.passed ? '✔' : '✘'}</td><td>${esc(i.name)}</td><td>${esc(i.detail)}</td></tr>`).join('');
  const revs = (r.timeline?.markers ?? []).filter((m) => m.kind === 'table' || m.kind === 'bad-table')
    .map((m) => `<li>t+${(m.t / 1000).toFixed(2)}s ${esc(m.label)}</li>`).join('');
  const steps = r.steps.map((s) => `<li class="${s.ok ? '' : 'badtxt'}">t+${(s.t / 1000).toFixed(2)}s <b>${esc(s.label)}</b> (${s.kind}, ${ms(s.durationMs)}): ${esc(s.detail)}</li>`).join('');
  return `<section id="${esc(r.name)}"><h2><span class="badge ${r.passed ? 'ok' : 'bad'}">${r.passed ? 'PASSED' : 'FAILED'}</span> ${esc(r.title)} <small>${esc(r.name)}</small></h2>
<p>${esc(r.description)}</p>
${r.timeline ? chart(r.timeline) : ''}
<h3>Invariants</h3><table class="inv">${inv}</table>
<h3>Figures</h3>${figureRows(r)}
<details><summary>Timeline (${r.steps.length} steps) and routing table revisions</summary><ul>${steps}</ul><ul>${revs}</ul></details>
${r.logs ? `<p>Process logs kept in <code>${esc(r.logs)}</code>.</p>` : ''}</section>`;
}

export function renderHtml(report: SuiteReport): string {
  const rows = report.scenarios.map((r) => `<tr class="${r.passed ? 'ok' : 'bad'}"><td><a href="#${esc(r.name)}">${esc(r.name)}</a></td><td>${r.passed ? 'passed' : 'FAILED'}</td><td>${r.requests}</td><td>${ms(r.figures?.failoverConvergenceMs)}</td><td>${ms(r.figures?.errorWindowMs)}</td><td>${ms(r.figures?.longestHeldMs)}</td><td>${(r.durationMs / 1000).toFixed(1)} s</td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cellgate chaos report — ${esc(report.suite)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 12px}
h1{margin-bottom:4px}h2{margin-top:36px;border-top:1px solid #ddd;padding-top:16px}h2 small{color:#888;font-weight:normal;font-size:13px}
table{border-collapse:collapse;margin:8px 0;width:100%}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
table.kv th{width:40%;font-weight:normal;color:#555}tr.bad td{background:#fdecea}.badtxt{color:#b00}
.badge{font-size:12px;padding:2px 6px;border-radius:3px;color:#fff;vertical-align:middle}.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}
.ax{font-size:10px;fill:#666}.mk{font-size:10px}.legend span{margin-right:14px;font-size:12px;color:#444}.legend i{display:inline-block;width:12px;height:8px;margin-right:4px;vertical-align:middle}
code{background:#f4f4f4;padding:1px 4px}
</style></head><body>
<h1>cellgate chaos report <span class="badge ${report.passed ? 'ok' : 'bad'}">${report.passed ? 'ALL PASSED' : 'FAILED'}</span></h1>
<p>Suite <b>${esc(report.suite)}</b>, started ${esc(report.startedAt)}, took ${(report.durationMs / 1000).toFixed(0)} s on ${report.machine.cpus} CPUs (node ${esc(report.machine.node)}).
Every scenario runs a fresh topology: a ${'3'}-member etcd cluster, zone servers (the oracle: cellgate's own fencing check), 3 gateway processes.</p>
<table><tr><th>scenario</th><th>result</th><th>requests</th><th>failover convergence</th><th>error window</th><th>longest held</th><th>took</th></tr>${rows}</table>
${report.scenarios.map(scenarioSection).join('\n')}
</body></html>
`;
}
