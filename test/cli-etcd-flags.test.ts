// Where the etcd security settings come from (flag, then environment, then the gateway
// config) and how they combine; the password never reaches a message.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdSecurityFromFlags, tableEncodingFromEnv } from '../src/cli/args';
import { SUBCOMMANDS } from '../src/cli/cellgate';
import { FLAG_DOCS } from '../src/cli/flags';
import { parseGatewayConfig } from '../src/router/config';
import { resolveEtcdSecurity } from '../src/store/etcd-security';

let dir: string;
let pem: string;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cellgate-etcd-flags-'));
  pem = join(dir, 'ca.pem');
  await writeFile(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
});
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

test('flag over environment over config; NAME:PASSWORD carries its password, else CELLGATE_ETCD_PASSWORD', (t) => {
  const config = { cacert: '/config/ca.pem', user: 'from-config', password: 'config-pw' };
  t.deepEqual(etcdSecurityFromFlags({}, {}, config), config);
  t.deepEqual(etcdSecurityFromFlags({}, { CELLGATE_ETCD_CACERT: '/env/ca.pem', CELLGATE_ETCD_USER: 'env-user', CELLGATE_ETCD_PASSWORD: 'env-pw' }, config),
    { cacert: '/env/ca.pem', user: 'env-user', password: 'env-pw' });
  t.deepEqual(etcdSecurityFromFlags({ 'etcd-cacert': '/flag/ca.pem', 'etcd-user': 'flag-user:flag:pw' }, { CELLGATE_ETCD_PASSWORD: 'env-pw' }, config),
    { cacert: '/flag/ca.pem', user: 'flag-user', password: 'flag:pw' }, 'the password is everything after the first colon');
  t.deepEqual(etcdSecurityFromFlags({ 'etcd-user': 'u' }, { CELLGATE_ETCD_PASSWORD: 'env-pw' }), { user: 'u', password: 'env-pw' });
  t.deepEqual(etcdSecurityFromFlags({ 'etcd-cert': '/c.pem', 'etcd-key': '/k.pem' }, { CELLGATE_ETCD_CERT: '', CELLGATE_ETCD_KEY: '' }), { cert: '/c.pem', key: '/k.pem' });
  t.deepEqual(etcdSecurityFromFlags({}, {}), {});
});

test('TLS turns bare endpoints into https://; http:// with TLS, a half client certificate, a user without password are refused', (t) => {
  t.deepEqual(resolveEtcdSecurity({ cacert: pem }, ['10.0.0.1:2379', 'https://10.0.0.2:2379']).urls, ['https://10.0.0.1:2379', 'https://10.0.0.2:2379']);
  t.deepEqual(resolveEtcdSecurity({}, ['10.0.0.1:2379']).urls, ['http://10.0.0.1:2379']);
  t.deepEqual(resolveEtcdSecurity({}, ['https://e:2379', 'f:2379']).urls, ['https://e:2379', 'https://f:2379'], 'one https:// endpoint makes all TLS');
  t.is(resolveEtcdSecurity({}, ['https://e:2379']).tls, null, 'https:// alone: the system roots');
  t.throws(() => resolveEtcdSecurity({ cacert: pem }, ['http://10.0.0.1:2379']), { message: /plain http but TLS is configured/ });
  t.throws(() => resolveEtcdSecurity({ key: pem }, ['e:1']), { message: /needs its key: give both --etcd-cert FILE and --etcd-key FILE/ });
  t.throws(() => resolveEtcdSecurity({ user: 'u' }, ['e:1']), { message: /etcd user u has no password/ });
  t.throws(() => resolveEtcdSecurity({ password: 'secret-1' }, ['e:1']), { message: /password without a user/ });
  const err = t.throws(() => resolveEtcdSecurity({ password: 'secret-1' }, ['e:1']));
  t.false(err!.message.includes('secret-1'));
  t.deepEqual(resolveEtcdSecurity({ user: 'u', password: '' }, ['e:1']).auth, { user: 'u', password: '' });
});

test('the gateway config\'s etcd block: checked key by key, the password\'s value never echoed', (t) => {
  const c = parseGatewayConfig({ etcd: { endpoints: ['https://e1:2379', 'e2:2379'], cacert: '/ca.pem', cert: '/c.pem', key: '/k.pem', user: 'gw', password: 'pw' } });
  t.deepEqual(c.etcd, { endpoints: ['https://e1:2379', 'e2:2379'], cacert: '/ca.pem', cert: '/c.pem', key: '/k.pem', user: 'gw', password: 'pw' });
  t.deepEqual(parseGatewayConfig({}, {}, { env: { CELLGATE_ETCD_ENDPOINTS: 'e1:2379,e2:2379' } }).etcd, { endpoints: ['e1:2379', 'e2:2379'] });
  t.is(parseGatewayConfig({}).etcd, null);
  const err = t.throws(() => parseGatewayConfig({ etcd: { endpoints: ['no-port'], cacrt: '/x', password: 123456789 } }));
  t.regex(err!.message, /etcd\.endpoints\[0\]/);
  t.regex(err!.message, /etcd.*cacrt/);
  t.regex(err!.message, /etcd\.password: must be a string/);
  t.false(err!.message.includes('123456789'));
});

test('every flag of every cellgate command is documented', (t) => {
  const missing = SUBCOMMANDS.flatMap((c) => Object.keys(c.options).filter((f) => !FLAG_DOCS[f]).map((f) => `${c.name} --${f}`));
  t.deepEqual(missing, []);
});

test('CELLGATE_ETCD_TABLE_ENCODING: unset or empty leaves the store default (json), json or deflate are taken, anything else is a usage error', (t) => {
  t.is(tableEncodingFromEnv({}), undefined);
  t.is(tableEncodingFromEnv({ CELLGATE_ETCD_TABLE_ENCODING: '' }), undefined);
  t.is(tableEncodingFromEnv({ CELLGATE_ETCD_TABLE_ENCODING: 'deflate' }), 'deflate');
  t.is(tableEncodingFromEnv({ CELLGATE_ETCD_TABLE_ENCODING: 'json' }), 'json');
  t.throws(() => tableEncodingFromEnv({ CELLGATE_ETCD_TABLE_ENCODING: 'gzip' }), { message: 'CELLGATE_ETCD_TABLE_ENCODING must be json or deflate, got "gzip"' });
});
