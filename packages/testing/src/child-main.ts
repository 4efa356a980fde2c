/**
 * Entry point of the child process started by `spawnEchoServer`: starts an
 * echo server with the JSON options in `argv[2]`, reports `ready` (or the
 * start-up error) over IPC, then applies the parent's control requests.
 * It exits when told to stop, and at once when the IPC channel closes (the
 * parent died or let go of it).
 *
 * @module
 */
import type { ChildMessage, ChildRequest, ChildStartOptions } from './child.js';
import { type EchoServer, startEchoServer } from './server.js';

/** Sends a message to the parent, then runs `then` once it was handed over. */
function tell(message: ChildMessage, then?: () => void): void {
  if (process.send === undefined) return;
  process.send(message, undefined, {}, () => then?.());
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

if (process.send === undefined) {
  process.stderr.write('child-main: start this file through spawnEchoServer (it needs an IPC channel)\n');
  process.exit(2);
}

let server: EchoServer | undefined;

process.on('disconnect', () => {
  server?.kill();
  process.exit(0);
});

async function handle(request: ChildRequest, running: EchoServer): Promise<ChildMessage> {
  switch (request.op) {
    case 'setLatency':
      running.setLatency(request.ms);
      return { type: 'reply', id: request.id, ok: true };
    case 'failNext':
      running.failNext(request.n, request.code, request.details);
      return { type: 'reply', id: request.id, ok: true };
    case 'setServing':
      running.setServing(request.status, request.service);
      return { type: 'reply', id: request.id, ok: true };
    case 'calls':
      return { type: 'reply', id: request.id, ok: true, result: running.calls };
    case 'stop':
      await running.stop(request.graceMs);
      return { type: 'reply', id: request.id, ok: true };
  }
}

try {
  const options = JSON.parse(process.argv[2] ?? '{}') as ChildStartOptions;
  const running = await startEchoServer(options);
  server = running;
  process.on('message', (request: ChildRequest) => {
    handle(request, running).then(
      (reply) => tell(reply, request.op === 'stop' ? () => process.exit(0) : undefined),
      (err: unknown) => tell({ type: 'reply', id: request.id, ok: false, message: errorMessage(err) }),
    );
  });
  tell({
    type: 'ready',
    address: running.address,
    host: running.host,
    port: running.port,
    name: running.name,
  });
} catch (err) {
  tell({ type: 'error', message: errorMessage(err) }, () => process.exit(1));
}
