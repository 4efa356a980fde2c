/**
 * The `loadShed` layer.
 *
 * @module
 */
export { loadShed, type LoadShedOptions } from './layer.js';
