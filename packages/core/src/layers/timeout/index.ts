/**
 * The `timeout` (whole call) and `attemptTimeout` (one attempt) layers.
 *
 * @module
 */
export { timeout, attemptTimeout, type TimeoutOptions, type AttemptTimeoutOptions } from './layer.js';
export { AttemptTimeoutError } from './errors.js';
