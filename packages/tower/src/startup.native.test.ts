// The startup suite (startup.test.ts), run with `transport: 'native'` on every
// channel it makes.
import { useTransport } from './test/transport.js';

useTransport('native');
await import('./startup.test.js');
