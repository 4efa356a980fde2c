// The same client as main.ts, finding the pods through the Kubernetes API
// instead of DNS: it lists and watches the Service's EndpointSlices
// (discovery.k8s.io/v1), so it learns at once when a pod turns ready, stops
// serving, or starts terminating, and takes a terminating pod out before
// the pod has even handled its SIGTERM. The servers then need no drain
// delay (DRAIN_DELAY_MS=0 in k8s/echo.yaml when every client reads
// EndpointSlices): GOAWAY at once, the calls in flight finish.
//
// The pod needs the ServiceAccount of k8s/rbac.yaml (get, list and watch on
// endpointslices; get on nodes for its zone) and NODE_NAME from the
// downward API. The test plays a rolling update against the stand-in API
// server of the test support.
//
// In a pod:   ECHO_DISCOVERY=kubernetes ECHO_SERVICE=echo ECHO_PORT=grpc npm start -- --seconds 60
import { kubernetes, kubernetesZone } from '@grpc-tower/discover/kubernetes';
import type { KubeConfig } from '@kubernetes/client-node';
import { type EchoClient, echoClientOver } from './client.js';

/** Where the service is, for the Kubernetes API. */
export interface EndpointSliceAddress {
  /** The Service's name, such as `echo` (its slices carry `kubernetes.io/service-name: echo`). */
  readonly service: string;
  /** Its namespace; default `default`. */
  readonly namespace?: string;
  /** The Service's port name (`grpc`), or the pods' port number. */
  readonly port: string | number;
  /** The API's address and credentials; default: in a pod, its ServiceAccount; elsewhere `$KUBECONFIG`. */
  readonly kubeConfig?: KubeConfig;
  /** The node this client runs on, for its zone; default `$NODE_NAME` (none: no zone routing). */
  readonly nodeName?: string;
  /** Where to say what happens to the pods (one line per change); default nowhere. */
  readonly log?: (line: string) => void;
}

// #region client
/** The echo client over the Service's EndpointSlices, zone-aware when its node has a zone. */
export async function endpointSlicesClient(address: EndpointSliceAddress): Promise<EchoClient> {
  const namespace = address.namespace ?? 'default';
  const kubeConfig = address.kubeConfig === undefined ? {} : { kubeConfig: address.kubeConfig };
  // list, then watch: ready pods are in the set; terminating, not serving or gone ones leave it at once
  const pods = kubernetes({ service: address.service, namespace, port: address.port, ...kubeConfig });
  const log = address.log;
  const events =
    log === undefined
      ? undefined
      : pods.events$.subscribe((e) => {
          if (e.type === 'endpoint') log(e.reason); // "pod echo-7d4b9-x2kq (10.1.2.3:50051) is terminating: …"
          if (e.type === 'failed' || e.type === 'disconnected') log(e.error.message);
        });
  // this node's topology.kubernetes.io/zone label; undefined without NODE_NAME or a label
  const zone = await kubernetesZone({
    ...(address.nodeName === undefined ? {} : { nodeName: address.nodeName }),
    ...kubeConfig,
  }).catch((err: unknown) => {
    // no `get` on nodes (k8s/rbac.yaml's ClusterRole): balance across every zone alike
    log?.(err instanceof Error ? err.message : String(err));
    return undefined;
  });
  log?.(`${pods.name}: ${zone === undefined ? 'no zone known, every zone alike' : `zone ${zone}`}`);
  const echo = echoClientOver(pods, {
    target: pods.name, // kubernetes:<namespace>/<service>:<port>
    authority: `${address.service}.${namespace}.svc.cluster.local`,
    zone,
  });
  return {
    client: echo.client,
    async close() {
      await echo.close();
      events?.unsubscribe();
    },
  };
}
// #endregion client
