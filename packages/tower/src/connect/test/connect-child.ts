/**
 * Entry point of the child process `spawnConnectEchoServer` starts: the
 * connect-node echo server with the JSON options in `argv[2]`; it reports
 * its port over IPC and exits when the IPC channel closes.
 *
 * @module
 */
import { type ConnectEchoOptions, startConnectEchoServer } from './connect-echo.js';

const server = await startConnectEchoServer(JSON.parse(process.argv[2] ?? '{}') as ConnectEchoOptions);
process.send?.({ port: server.port });
process.on('disconnect', () => process.exit(0));
