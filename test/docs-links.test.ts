// The repository is all a user has: every link in its Markdown points at a file inside it
// (and, with a #fragment, at a heading that exists), never outside.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import test from 'ava';

const ROOT = join(__dirname, '..', '..');
const SKIP = new Set(['node_modules', 'dist', '.git', '.tmp', '.demo', '.cellgate']);

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

test('every Markdown link points inside the repository, at a file (and heading) that exists', (t) => {
  const files = markdownFiles(ROOT);
  t.true(files.some((f) => f.endsWith(join('docs', 'design.md'))), 'docs/design.md is there');
  const broken: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      const where = `${relative(ROOT, file)}: ${link}`;
      if (/^[a-z]+:/i.test(link)) {
        broken.push(`${where} (points outside the repository)`);
        continue;
      }
      const [path, fragment] = link.split('#') as [string, string | undefined];
      const target = path === '' ? file : resolve(dirname(file), path);
      if (!target.startsWith(`${ROOT}/`) && target !== ROOT) broken.push(`${where} (outside the repository)`);
      else if (!existsSync(target)) broken.push(`${where} (no such file)`);
      else if (fragment && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(fragment)) broken.push(`${where} (no such heading)`);
    }
  }
  t.deepEqual(broken, []);
});
