#!/usr/bin/env node
// Makes sure the system servers that the integration tests run are present:
// dnsmasq (a real DNS server) and etcd (a real registry), from Debian's
// packages, and nginx (the gRPC proxy that the benchmark suite, whose smoke
// test runs with the tests, compares against), and kubectl (the second real
// client of the tests' stand-in Kubernetes API server), tinyproxy (an HTTP CONNECT proxy)
// and Python's grpcio (a gRPC C-core server) for the native transport's tests. Installs them with apt-get
// when missing and allowed; otherwise says exactly what to install and exits
// non-zero.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const needs = [
  { bin: 'dnsmasq', pkg: 'dnsmasq-base', paths: ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'] },
  { bin: 'etcd', pkg: 'etcd-server', paths: ['/usr/bin/etcd', '/usr/local/bin/etcd'] },
  { bin: 'etcdctl', pkg: 'etcd-client', paths: ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'] },
  { bin: 'nginx', pkg: 'nginx', paths: ['/usr/sbin/nginx', '/usr/bin/nginx'] },
  { bin: 'openssl', pkg: 'openssl', paths: ['/usr/bin/openssl'] },
  // the second real client that checks the stand-in Kubernetes API server
  { bin: 'kubectl', pkg: 'kubernetes-client', paths: ['/usr/bin/kubectl', '/usr/local/bin/kubectl'] },
  // an HTTP CONNECT proxy, for the native transport's proxy support (grpc_proxy, https_proxy, http_proxy)
  { bin: 'tinyproxy', pkg: 'tinyproxy', paths: ['/usr/bin/tinyproxy', '/usr/sbin/tinyproxy'] },
  // a gRPC C-core server (Debian's Python grpcio, for Debian's /usr/bin/python3), a second server for the native transport
  { bin: 'python3 grpcio', pkg: 'python3-grpcio', paths: [], present: () => pythonHas('grpc') },
];

const onPath = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
const pythonHas = (module) =>
  spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
const missing = needs.filter((n) =>
  n.present === undefined ? !n.paths.some((p) => existsSync(p)) && !onPath(n.bin) : !n.present(),
);
if (missing.length === 0) process.exit(0);

const pkgs = missing.map((m) => m.pkg);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = onPath('apt-get');
if (!isRoot || !hasApt || process.env.GRPC_TOWER_NO_INSTALL === '1') {
  console.error(
    `The integration tests need ${missing.map((m) => m.bin).join(', ')}, which are not installed.\n` +
      `Install them with:  sudo apt-get install -y ${pkgs.join(' ')}\n` +
      `(or put the binaries on PATH), then run the tests again.`,
  );
  process.exit(1);
}
console.log(`Installing ${pkgs.join(', ')} from Debian's packages for the integration tests…`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [
  ['update', '-qq'],
  ['install', '-y', '-qq', '--no-install-recommends', ...pkgs],
]) {
  const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`apt-get ${args.join(' ')} failed; install ${pkgs.join(' ')} by hand and try again.`);
    process.exit(1);
  }
}
