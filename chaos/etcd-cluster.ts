// The harness's etcd: a real multi-member cluster on free loopback ports with temporary data
// dirs. The launching code is shared with the tests (test/helpers/etcd.ts, compiled into
// dist alongside the harness) rather than copied: one place knows how to start etcd.
export { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../test/helpers/etcd';
export { freePort, freePorts } from '../test/helpers/ports';
