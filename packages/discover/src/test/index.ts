/**
 * Test support for grpc-tower packages: real servers started on loopback
 * with their own folders and stopped after the tests. {@link startDnsmasq}
 * runs a DNS server whose records a test rewrites, {@link startEtcd} a
 * single-member etcd that can be restarted and compacted, and
 * {@link startTcpProxy} a relay that can cut connections on demand.
 *
 * @example
 * ```ts
 * import { startDnsmasq } from '../test/index.js';
 * const server = await startDnsmasq({ hosts: { 'svc.test': ['127.0.0.11'] } });
 * afterAll(() => server.close());
 * ```
 * @packageDocumentation
 */
export {
  startDnsmasq,
  startSilentDnsServer,
  Dnsmasq,
  type DnsmasqOptions,
  type SilentDnsServer,
  type SrvRecordSpec,
} from './dnsmasq.js';
export { startEtcd, EtcdServer, type EtcdServerOptions } from './etcd.js';
export { startTcpProxy, TcpProxy } from './tcp-proxy.js';
export { freePort } from './ports.js';
export { record, type Recording } from './record.js';
export {
  startKubeApi,
  endpointSlice,
  type KubeApiServer,
  type KubeApiOptions,
  type KubeApiRequest,
  type EndpointSliceInput,
  type EndpointSliceEndpoint,
} from './kube-api.js';
export {
  startXdsServer,
  xdsCluster,
  xdsEndpoints,
  xdsListener,
  xdsRoute,
  XDS_TYPE,
  type XdsAck,
  type XdsEndpointInput,
  type XdsKind,
  type XdsLocalityInput,
  type XdsResource,
  type XdsServer,
  type XdsServerOptions,
} from './xds-server.js';
