// Loaded before every test file (vitest `setupFiles`): a test that leaves an
// unhandled promise rejection, or an uncaught exception, fails by name.
import { afterEach } from 'vitest';

const leaked: unknown[] = [];
process.on('unhandledRejection', (reason) => {
  leaked.push(reason);
});

afterEach(async () => {
  // give rejections created at the very end of the test a turn to surface
  await new Promise((resolve) => setImmediate(resolve));
  if (leaked.length > 0) {
    const all = leaked.splice(0);
    throw new AggregateError(
      all.map((r) => (r instanceof Error ? r : new Error(String(r)))),
      `test left ${all.length} unhandled promise rejection(s): ${all.map(String).join('; ')}`,
    );
  }
});
