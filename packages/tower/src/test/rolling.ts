/**
 * The seed's rolling update through xDS, for the tests that run it: three
 * old servers replaced one at a time, each new one published HEALTHY first,
 * then each old one turned DRAINING in EDS and stopped (GOAWAY at once, no
 * drain delay) at the same moment, then removed from the assignment.
 *
 * @module
 */
import type { EchoServer } from '@grpc-tower/testing';

/** EDS health statuses the rolling update publishes. */
export type Health = 'HEALTHY' | 'DRAINING';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Replaces `old[i]` by `next[i]` for each i, publishing each step through
 * `publish` (the endpoints in `states`, which starts with the old servers
 * HEALTHY); resolves once every old server has stopped.
 */
export async function rollOver(
  old: readonly EchoServer[],
  next: readonly EchoServer[],
  states: Map<EchoServer, Health>,
  publish: (states: ReadonlyMap<EchoServer, Health>) => void,
): Promise<void> {
  const stopped: Promise<void>[] = [];
  for (const [i, previous] of old.entries()) {
    states.set(next[i] as EchoServer, 'HEALTHY');
    publish(states);
    await sleep(300);
    // DRAINING in EDS and GOAWAY from the server at the same moment; no drain delay
    states.set(previous, 'DRAINING');
    publish(states);
    stopped.push(previous.stop(5000));
    await sleep(300);
    states.delete(previous);
    publish(states);
  }
  await sleep(500);
  await Promise.all(stopped);
}
