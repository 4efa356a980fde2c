/**
 * The `rateLimit` layer.
 *
 * @module
 */
export { rateLimit, type RateLimitOptions, type RateLimitService } from './layer.js';
export { RateLimitedError } from './errors.js';
