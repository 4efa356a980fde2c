// Loaded before every test file (vitest `setupFiles`): a test that leaves an
// unhandled promise rejection fails by name, and one that surfaces only
// after a file's last test fails the file. Vitest stands back while another
// unhandledRejection listener exists, so this one leaves after the file's
// tests and vitest reports anything later. (Uncaught exceptions are
// reported by vitest itself.)
import { afterAll, afterEach } from 'vitest';

const leaked: unknown[] = [];
const onRejection = (reason: unknown): void => {
  leaked.push(reason);
};
process.on('unhandledRejection', onRejection);

function check(who: string): void {
  if (leaked.length === 0) return;
  const all = leaked.splice(0);
  const errors = all.map((r) => (r instanceof Error ? r : new Error(String(r))));
  throw new Error(`${who} left ${all.length} unhandled promise rejection(s): ${all.map(String).join('; ')}`, {
    cause: errors.length === 1 ? errors[0] : new AggregateError(errors),
  });
}

afterEach(async () => {
  // give rejections made at the very end of the test, or in a timer it has
  // just set, a turn to surface
  await new Promise((resolve) => setTimeout(resolve, 0));
  await new Promise((resolve) => setImmediate(resolve));
  check('test');
});

afterAll(async () => {
  // a rejection from work a test started but did not await may come later
  await new Promise((resolve) => setTimeout(resolve, 20));
  process.off('unhandledRejection', onRejection);
  check('the tests of this file');
});
