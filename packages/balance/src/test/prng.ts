// A seeded pseudo-random source (mulberry32), so distribution tests pick
// the same sequence on every run.
export { seededRandom } from '@grpc-tower/testing';
