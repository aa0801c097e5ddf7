// The Dockerfile cannot be built on these machines (no image registry), so what can be checked
// is: the runtime stage is the official Node 22 slim image, runs as a non-root user, has
// production dependencies only, exposes the traffic and admin ports it configures, keeps a
// volume at the snapshot directory, uses exec forms (signals reach node); every path it
// COPYs exists after `npm run build` and is not excluded by .dockerignore; and the command
// line it runs (ENTRYPOINT + CMD, with its ENV) starts a gateway on a file store whose
// /healthz the HEALTHCHECK command finds healthy, and that drains and exits 0 on SIGTERM.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CELLGATE, cellctl } from './helpers/cli';
import { freshStateHome } from './helpers/e2e';
import { envPairs, execForm, parseDockerfile } from './helpers/dockerfile';
import { freePorts } from './helpers/ports';
import { inheritedEnv, runCommand } from './helpers/run';
import { until } from './helpers/wait';

const ROOT = join(__dirname, '..', '..');
const steps = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = Math.max(...steps.map((s) => s.stage));
const final = steps.filter((s) => s.stage === runtime);
const one = (keyword: string) => final.filter((s) => s.keyword === keyword).at(-1)!;
const env = Object.assign({}, ...final.filter((s) => s.keyword === 'ENV').map((s) => envPairs(s.args))) as Record<string, string>;

test('runtime stage: Node 22 slim, production dependencies only, non-root, ports, snapshot volume, exec forms', (t) => {
  t.is(steps.filter((s) => s.keyword === 'FROM').length, 2, 'multi-stage: build and runtime');
  for (const from of steps.filter((s) => s.keyword === 'FROM')) t.regex(from.args, /^node:22-[a-z]+-slim\b/);
  t.true(final.some((s) => s.keyword === 'RUN' && /npm ci --omit=dev/.test(s.args)), 'production dependencies only');
  t.false(final.some((s) => s.keyword === 'RUN' && /npm (run )?build|tsc/.test(s.args)), 'no build in the runtime stage');
  t.regex(one('USER').args, /^(node|[1-9]\d*)$/, 'not root');
  t.deepEqual(one('EXPOSE').args.split(/\s+/).sort(), [env.CELLGATE_ADMIN_PORT, env.CELLGATE_PORT].sort());
  t.deepEqual(execForm(one('VOLUME').args), ['/var/lib/cellgate']);
  t.true(final.some((s) => s.keyword === 'RUN' && /chown node:node \/var\/lib\/cellgate/.test(s.args)), 'the snapshot dir is writable by the user');
  t.is(env.CELLGATE_ADMIN_HOST, '0.0.0.0', 'probes from outside the container reach the admin port');
  t.deepEqual(execForm(one('ENTRYPOINT').args).slice(0, 2), ['node', 'dist/src/cli/cellgate.js'], 'exec form: node is PID 1 and gets SIGTERM');
  t.regex(one('HEALTHCHECK').args, /CMD \[/);
});

test('every path the Dockerfile copies exists after the build and is not ignored by .dockerignore', (t) => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const builderDir = steps.find((s) => s.stage === 0 && s.keyword === 'WORKDIR')!.args;
  let checked = 0;
  for (const copy of steps.filter((s) => s.keyword === 'COPY')) {
    const words = copy.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='));
    const sources = words.filter((w) => !w.startsWith('--')).slice(0, -1);
    for (const source of sources) {
      // A path copied from the build stage is under its WORKDIR, i.e. the repository after `npm run build`.
      const rel = from ? source.slice(builderDir.length).replace(/^\/+/, '') : source;
      t.true(existsSync(join(ROOT, rel)), `${source} (${rel}) exists`);
      if (!from) t.false(ignored.some((p) => rel === p || rel.startsWith(`${p}/`)), `${rel} is not in .dockerignore`);
      checked++;
    }
  }
  t.true(checked >= 6, `${checked} paths checked`);
});

test('the image command line starts a gateway the HEALTHCHECK finds healthy; SIGTERM drains it and exits 0', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-container-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = join(dir, 'table.json');
  const init = await cellctl(['init', '--topology', join(ROOT, 'config', 'demo-topology.yaml'), '--file', store, '--reason', 'test', '--yes']);
  t.is(init.code, 0, init.stderr);
  const check = await runCommand(process.execPath, [CELLGATE, 'serve', '--check'], { env: { ...env, CELLGATE_STORE: `file:${store}` } });
  t.is(check.code, 0, check.stderr);
  t.notRegex(check.stderr, /warning/, 'every CELLGATE_* variable of the image is a configuration variable');
  const [port, adminPort] = await freePorts(2);
  const command = [...execForm(one('ENTRYPOINT').args), ...execForm(one('CMD').args)];
  t.is(command[0], 'node');
  const runEnv = { ...inheritedEnv(), ...env, XDG_STATE_HOME: freshStateHome(), CELLGATE_PORT: String(port), CELLGATE_ADMIN_PORT: String(adminPort), CELLGATE_STORE: `file:${store}` };
  const child = spawn(process.execPath, command.slice(1), { cwd: ROOT, env: runEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const health = execForm(one('HEALTHCHECK').args.slice(one('HEALTHCHECK').args.indexOf('CMD')));
  const healthcheck = () => runCommand(process.execPath, health.slice(1), { cwd: ROOT, env: runEnv, timeoutMs: 10_000 });
  await until('the HEALTHCHECK passes', async () => (await healthcheck()).code === 0, 20_000, 100);
  t.true(stderr.includes(`"traffic":"http://0.0.0.0:${port}"`) || stderr.includes(`:${port}`), stderr);
  const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  t.is(ready.status, 200);
  child.kill('SIGTERM');
  t.is(await exited, 0, stderr);
  t.is((await healthcheck()).code, 1, 'unhealthy once stopped');
});

test('the build stage builds from the build context alone: its COPYs (minus .dockerignore) compile, and give what the runtime stage copies', async (t) => {
  // Stands in for `docker build`'s first stage: the stage's COPY sources into a fresh
  // directory (its WORKDIR), this checkout's node_modules for `npm ci`, then its build RUN.
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-image-build-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const build = steps.filter((s) => s.stage === 0);
  const workdir = build.find((s) => s.keyword === 'WORKDIR')!.args;
  for (const copy of build.filter((s) => s.keyword === 'COPY')) {
    const words = copy.args.split(/\s+/).filter((w) => !w.startsWith('--'));
    const dest = join(dir, words.at(-1)!);
    for (const source of words.slice(0, -1)) {
      await cp(join(ROOT, source), words.length > 2 || dest.endsWith('/') ? join(dest, source.split('/').pop()!) : dest, { recursive: true });
    }
  }
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const compile = build.filter((s) => s.keyword === 'RUN' && !/npm ci/.test(s.args));
  t.is(compile.length, 1);
  const r = await runCommand('sh', ['-c', compile[0]!.args], { cwd: dir, timeoutMs: 120_000 });
  t.is(r.code, 0, r.stdout + r.stderr);
  for (const copy of final.filter((s) => s.keyword === 'COPY' && s.args.includes('--from='))) {
    const source = copy.args.split(/\s+/).filter((w) => !w.startsWith('--'))[0]!;
    t.true(existsSync(join(dir, source.slice(workdir.length))), `${source} made by the build stage`);
  }
  t.true(existsSync(join(dir, 'dist', 'src', 'cli', 'cellgate.js')));
  t.false(existsSync(join(dir, 'dist', 'test')), 'tests are not in the build context');
});
