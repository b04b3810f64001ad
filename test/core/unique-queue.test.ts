// The bounded unique queue against a reference written from its definition (an array searched end to end: first in,
// first out, each item once, nothing added beyond the capacity), over generated runs of adds and takes.
import fc from 'fast-check';
import { UniqueQueue, type AddOutcome } from '../../core/unique-queue';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/unique-queue.test.ts');

/** Brute force: the waiting items in order, a linear search for "already waiting". */
class ReferenceQueue {
  readonly items: number[] = [];
  constructor(private readonly capacity: number) {}
  add(item: number): AddOutcome {
    if (this.items.includes(item)) return 'present';
    if (this.items.length >= this.capacity) return 'full';
    this.items.push(item);
    return 'added';
  }
  take(count: number): number[] {
    return this.items.splice(0, count);
  }
}

type Step = { add: number } | { take: number };

describe('UniqueQueue', () => {
  it('hands items out first in, first out, each once however often added, and refuses new ones beyond its capacity', () => {
    const queue = new UniqueQueue<string>(3);
    expect(['a', 'b', 'a', 'c', 'd', 'b'].map((item) => queue.add(item))).toEqual(['added', 'added', 'present', 'added', 'full', 'present']);
    expect(queue.size).toBe(3);
    expect(queue.take(2)).toEqual(['a', 'b']);
    // A taken item is no longer waiting: added again, it goes to the back.
    expect(queue.add('a')).toBe('added');
    expect(queue.add('d')).toBe('added');
    expect(queue.add('e')).toBe('full');
    expect(queue.take(10)).toEqual(['c', 'a', 'd']);
    expect(queue.size).toBe(0);
    expect(queue.take(1)).toEqual([]);
  });

  it('agrees with the reference over generated adds and takes, across its internal compaction', () => {
    // Small takes against single adds keep the queue neither empty nor growing for long, so a run takes well over
    // the 1024 items after which the queue drops what it handed out, several times.
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 5000 }).map((add) => ({ add })) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 6 }).map((take) => ({ take })) },
    );
    fuzz.check(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.array(step, { minLength: 3000, maxLength: 8000 }), (capacity, steps) => {
        const queue = new UniqueQueue<number>(capacity);
        const reference = new ReferenceQueue(capacity);
        // Compared once per run (an expect per step would make the run slow): what each step did, and the sizes.
        const got: unknown[] = [];
        const expected: unknown[] = [];
        for (const s of steps) {
          if ('add' in s) {
            got.push(queue.add(s.add), queue.size);
            expected.push(reference.add(s.add), reference.items.length);
          } else {
            got.push(queue.take(s.take));
            expected.push(reference.take(s.take));
          }
        }
        got.push(queue.take(capacity));
        expected.push(reference.items);
        expect(got).toEqual(expected);
      }),
      40,
    );
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) expect(() => new UniqueQueue(capacity)).toThrow(`a queue's capacity must be a positive integer, got ${capacity}`);
  });
});
