/**
 * A queue that serves its keys in turn: each `shift` takes the oldest item of the next key in the
 * rotation, so one key with thousands of items queued delays another key's next item by at most
 * one item per key. The group-commit writer keys it by site, so a flooding site's batches cannot
 * push a well-behaved site's readings behind all of them (docs/reliability.md, flood scenario).
 */
export class FairQueue<K, T> {
  readonly #byKey = new Map<K, T[]>();
  /** Keys with items, in the order they are next served. */
  #turns: K[] = [];
  #size = 0;

  /** Items queued across every key. */
  get size(): number {
    return this.#size;
  }

  push(key: K, item: T): void {
    const items = this.#byKey.get(key);
    if (items) items.push(item);
    else {
      this.#byKey.set(key, [item]);
      this.#turns.push(key);
    }
    this.#size++;
  }

  /** The item `shift` would return, without taking it. */
  peek(): T | undefined {
    const key = this.#turns[0];
    return key === undefined ? undefined : this.#byKey.get(key)![0];
  }

  /** Takes the oldest item of the key whose turn it is; that key goes to the back of the rotation. */
  shift(): T | undefined {
    const key = this.#turns.shift();
    if (key === undefined) return undefined;
    const items = this.#byKey.get(key)!;
    const item = items.shift()!;
    if (items.length > 0) this.#turns.push(key);
    else this.#byKey.delete(key);
    this.#size--;
    return item;
  }
}
