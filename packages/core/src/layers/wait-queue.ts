/**
 * A FIFO queue with O(1) removal of any entry, for calls that wait for a
 * slot or a token and may leave early when their signal aborts.
 *
 * @internal
 * @module
 */

/** One entry; `remove` takes it out of its queue wherever it stands. */
export interface WaitNode<T> {
  readonly value: T;
  /** @internal */
  prev: WaitNode<T> | undefined;
  /** @internal */
  next: WaitNode<T> | undefined;
  /** @internal */
  queued: boolean;
}

/**
 * A doubly linked FIFO list.
 *
 * @internal
 * @example
 * ```ts
 * const q = new WaitQueue<string>();
 * const node = q.push('a');
 * q.remove(node); // q.size === 0
 * ```
 */
export class WaitQueue<T> {
  #head: WaitNode<T> | undefined;
  #tail: WaitNode<T> | undefined;
  #size = 0;

  /** Entries in the queue. */
  get size(): number {
    return this.#size;
  }

  /** Appends `value` and returns its node. */
  push(value: T): WaitNode<T> {
    const node: WaitNode<T> = { value, prev: this.#tail, next: undefined, queued: true };
    if (this.#tail === undefined) this.#head = node;
    else this.#tail.next = node;
    this.#tail = node;
    this.#size++;
    return node;
  }

  /** Removes and returns the oldest value, or `undefined` when empty. */
  shift(): T | undefined {
    const node = this.#head;
    if (node === undefined) return undefined;
    this.remove(node);
    return node.value;
  }

  /** Removes `node`; does nothing when it already left the queue. */
  remove(node: WaitNode<T>): void {
    if (!node.queued) return;
    node.queued = false;
    if (node.prev === undefined) this.#head = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) this.#tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = undefined;
    node.next = undefined;
    this.#size--;
  }
}
