// A bounded first-in first-out queue that holds each item at most once: adding is O(1), taking n items is O(n)
// (amortized), however many wait. Pure; the segment engine keeps its customers waiting for evaluation in one.

/** What `add` did: queued at the back, already waiting (left where it is), or refused because the queue is full. */
export type AddOutcome = 'added' | 'present' | 'full';

export class UniqueQueue<T> {
  /** Items in arrival order from `head` on; the taken ones before `head` are dropped when they are most of the array. */
  private items: T[] = [];
  private head = 0;
  private readonly waiting = new Set<T>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`a queue's capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.waiting.size;
  }

  has(item: T): boolean {
    return this.waiting.has(item);
  }

  add(item: T): AddOutcome {
    if (this.waiting.has(item)) return 'present';
    if (this.waiting.size >= this.capacity) return 'full';
    this.waiting.add(item);
    this.items.push(item);
    return 'added';
  }

  /** Takes up to `count` items from the front, oldest first; a taken item can be added again (at the back). */
  take(count: number): T[] {
    const end = Math.min(this.head + Math.max(0, count), this.items.length);
    const taken = this.items.slice(this.head, end);
    this.head = end;
    for (const item of taken) this.waiting.delete(item);
    // Copying the rest only once the taken part is at least half the array keeps each take linear in its count.
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return taken;
  }
}
