/**
 * The `concurrencyLimit` layer.
 *
 * @module
 */
export { concurrencyLimit, type ConcurrencyLimitOptions, type ConcurrencyLimitService } from './layer.js';
