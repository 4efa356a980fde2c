// The tests' pods: echo servers with the health service, each on its own
// loopback address and all on one port, as pods share a container port.
import { type EchoServer, startEchoServer } from '@grpc-tower/testing';

/** Starts one pod per host, named `pod-1`, `pod-2`…; tries another port when one is taken. */
export async function startPods(hosts: readonly string[]): Promise<EchoServer[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const started: EchoServer[] = [];
    try {
      for (const [i, host] of hosts.entries()) {
        started.push(
          await startEchoServer({ host, port: started[0]?.port ?? 0, name: `pod-${i + 1}`, health: true }),
        );
      }
      return started;
    } catch {
      for (const s of started) s.kill();
    }
  }
  throw new Error('could not start the pods on one port');
}
