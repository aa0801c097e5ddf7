// The Kubernetes manifests (deploy/kubernetes): every document parses and is listed by the
// kustomization; the gateway Deployment's probes name the container's admin port and paths
// that a real gateway serves with the ConfigMap's configuration (started here on a file
// store: /readyz and /healthz answer 200 on the admin port the ConfigMap sets); the ConfigMap
// passes `cellgate serve --check` (its store: the etcd block's endpoints); the grace period
// covers the preStop sleep plus shutdownGraceMs; the etcd TLS Secret is mounted where the
// config's etcd block points; the autopilot runs 2 replicas of `cellgate autopilot`.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CELLGATE, cellctl, runCli } from './helpers/cli';
import { startGatewayProcess } from './helpers/e2e';
import { freePorts } from './helpers/ports';

const ROOT = join(__dirname, '..', '..');
const DIR = join(ROOT, 'deploy', 'kubernetes');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const docs: { file: string; obj: Obj }[] = files.flatMap((file) => parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => {
  if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return { file, obj: d.toJS() as Obj };
}));
const find = (kind: string, name: string): Obj => {
  const hit = docs.find((d) => d.obj.kind === kind && d.obj.metadata?.name === name);
  if (!hit) throw new Error(`no ${kind} ${name}`);
  return hit.obj;
};
const configText = find('ConfigMap', 'cellgate-gateway').data['gateway.yaml'] as string;
const config = parse(configText) as Obj;
const gateway = find('Deployment', 'cellgate');
const container = gateway.spec.template.spec.containers[0] as Obj;
const portNumber = (c: Obj, name: string) => (c.ports as Obj[]).find((p) => p.name === name)?.containerPort as number;

test('every manifest parses and has apiVersion, kind, name and the cellgate namespace', (t) => {
  t.true(docs.length >= 10);
  for (const { file, obj } of docs) {
    if (obj.kind === 'Kustomization') continue;
    t.true(Boolean(obj.apiVersion && obj.kind && obj.metadata?.name), `${file}: ${obj.kind}`);
    if (obj.kind !== 'Namespace') t.is(obj.metadata.namespace, 'cellgate', `${file}: ${obj.kind} ${obj.metadata.name}`);
  }
});

test('kustomization resources are exactly the manifests (secrets are the operator\'s)', (t) => {
  const k = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as Obj;
  t.deepEqual([...k.resources].sort(), files.filter((f) => f !== 'kustomization.yaml' && !f.includes('example')).sort());
});

test('gateway Deployment: probes on the admin port and paths, preStop, grace, resources, anti-affinity, PDB, Services, ServiceMonitor, etcd TLS mounted', (t) => {
  t.is(portNumber(container, 'admin'), config.adminPort);
  t.is(portNumber(container, 'traffic'), config.port);
  t.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
  t.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
  t.is(config.adminHost, '0.0.0.0', 'kubelet probes reach the pod IP');
  const preStop = Number(container.lifecycle.preStop.exec.command[1]);
  t.true(gateway.spec.template.spec.terminationGracePeriodSeconds > preStop + config.shutdownGraceMs / 1000);
  t.truthy(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory);
  const anti = gateway.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  t.is(anti.topologyKey, 'kubernetes.io/hostname');
  t.deepEqual(anti.labelSelector.matchLabels, gateway.spec.selector.matchLabels);
  t.deepEqual(find('PodDisruptionBudget', 'cellgate').spec.selector.matchLabels, gateway.spec.selector.matchLabels);
  t.is(find('Service', 'cellgate').spec.ports[0].targetPort, 'traffic');
  const admin = find('Service', 'cellgate-admin');
  t.is(admin.spec.ports[0].targetPort, 'admin');
  t.deepEqual(admin.spec.selector, gateway.spec.selector.matchLabels);
  const monitor = find('ServiceMonitor', 'cellgate');
  t.deepEqual(monitor.spec.endpoints[0], { port: 'admin', path: '/metrics', interval: '15s' });
  t.true(monitor.spec.selector.matchExpressions[0].values.includes(admin.metadata.labels['app.kubernetes.io/component']));
  // The etcd block's files live where the Secret is mounted.
  const tlsMount = (container.volumeMounts as Obj[]).find((m) => m.name === 'etcd-tls')!;
  for (const key of ['cacert', 'cert', 'key']) t.true((config.etcd[key] as string).startsWith(`${tlsMount.mountPath}/`), key);
  const secret = (gateway.spec.template.spec.volumes as Obj[]).find((v) => v.name === 'etcd-tls')!.secret.secretName;
  const example = find('Secret', secret);
  for (const key of ['cacert', 'cert', 'key']) t.true((config.etcd[key] as string).slice(tlsMount.mountPath.length + 1) in example.stringData, `${key} is a key of the Secret`);
  t.true((config.snapshotPath as string).startsWith(`${(container.volumeMounts as Obj[]).find((m) => m.name === 'state')!.mountPath}/`));
  t.true(container.args.includes('/etc/cellgate/gateway.yaml'));
});

test('the ConfigMap\'s configuration passes cellgate serve --check', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-k8s-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'gateway.yaml'), configText);
  // The container's environment as the Deployment sets it (values from the pod or a Secret stood in for).
  const podEnv: Record<string, string> = { CELLGATE_STORE: '' };
  for (const e of container.env as Obj[]) podEnv[e.name] = e.value ?? (e.valueFrom.secretKeyRef ? 'from-the-secret' : 'cellgate-7d9f-abcde');
  const r = await runCli(CELLGATE, ['serve', '--check', '--config', join(dir, 'gateway.yaml')], { env: podEnv });
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stderr, /warning/, 'every CELLGATE_* variable the Deployment sets is a configuration variable');
  const effective = JSON.parse(r.stdout) as Obj;
  t.is(effective.adminPort, config.adminPort);
  t.is(effective.id, 'cellgate-7d9f-abcde', 'presence records name the pod');
  t.false(r.stdout.includes('from-the-secret'));
});

test('a gateway with the ConfigMap\'s configuration (on a file store) answers the probes\' paths 200 on the admin port', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-k8s-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = join(dir, 'table.json');
  t.is((await cellctl(['init', '--topology', join(ROOT, 'config', 'demo-topology.yaml'), '--file', store, '--reason', 'test', '--yes'])).code, 0);
  // Only the ports (free ones here), the store and the snapshot file differ from the pod's.
  const [port, adminPort] = await freePorts(2);
  const { etcd: _etcd, ...rest } = config;
  await writeFile(join(dir, 'gateway.yaml'), JSON.stringify({ ...rest, port, adminPort, snapshotPath: join(dir, 'snapshot.json') }));
  const gw = await startGatewayProcess(['--config', join(dir, 'gateway.yaml'), '--store', `file:${store}`], 'k8s-probe');
  t.teardown(() => gw.stop());
  t.true(gw.admin.endsWith(`:${adminPort}`), gw.admin);
  for (const probe of [container.readinessProbe, container.livenessProbe]) {
    const r = await fetch(`http://127.0.0.1:${adminPort}${probe.httpGet.path}`);
    t.is(r.status, 200, probe.httpGet.path);
  }
  t.is(await gw.stop(), 0);
});

test('autopilot: its own Deployment, 2 replicas of `cellgate autopilot` on the same store prefix and etcd TLS Secret, probes on its admin port', async (t) => {
  const autopilot = find('Deployment', 'cellgate-autopilot');
  t.is(autopilot.spec.replicas, 2);
  const c = autopilot.spec.template.spec.containers[0] as Obj;
  const args = c.args as string[];
  t.is(args[0], 'autopilot');
  t.is(args[args.indexOf('--prefix') + 1], config.prefix);
  t.deepEqual(args[args.indexOf('--store') + 1]!.replace(/^etcd:/, '').split(','), (config.etcd.endpoints as string[]).map((e) => e.replace(/^https:\/\//, '')));
  const adminPort = args[args.indexOf('--admin-port') + 1];
  t.is(String(portNumber(c, 'admin')), adminPort);
  t.is((c.env as Obj[]).find((e) => e.name === 'CELLGATE_ADMIN_PORT')!.value, adminPort, 'the exec probe asks that port');
  t.deepEqual(c.livenessProbe.exec.command.slice(0, 2), ['node', 'deploy/container/healthcheck.js']);
  t.is((autopilot.spec.template.spec.volumes as Obj[])[0]!.secret.secretName, 'cellgate-etcd-tls');
  // Its flags: the ones `cellgate autopilot --help` documents once the command exists in this
  // build; until then the ones it is being built with.
  const flags = args.filter((a) => a.startsWith('--'));
  const help = await runCli(CELLGATE, ['autopilot', '--help']);
  const known = help.code === 0 ? help.stdout : '--store --prefix --id --admin-port --down-after --cooldown --max-down-share --dry-run';
  for (const flag of flags) t.true(known.includes(flag), `${flag} is an autopilot flag`);
  t.log(help.code === 0 ? 'autopilot flags checked against `cellgate autopilot --help`' : 'no `cellgate autopilot` in this build: flags checked against the planned list');
});
