// fast-check wired to the run's seed (test/support/run-seed.ts: a fresh one each run, or FUZZ_SEED's to replay a
// failure), so every property of a file replays from the one printed line, and a failure says how to replay it.
import fc from 'fast-check';
import { runSeed } from './run-seed';

/**
 * Bounds the search only, well below jest's 120 s test timeout (jest.config.js): a property still running then
 * stops and passes on the runs it made, and a failure found by then is reported with the smallest counterexample
 * shrunk so far. Without it, shrinking a large failing input over HTTP (thousands of steps, most of which pass)
 * would outlast jest's timeout and lose the report, the abandoned property would go on writing into the next
 * test's store, and a red run would cost CI minutes per property.
 */
const DEFAULT_SEARCH_LIMIT_MS = 60_000;

export interface FuzzRun {
  seed: number;
  /** fc.assert with this file's seed; a failure's message starts with the command line that replays it. */
  check(property: fc.IProperty<any>, numRuns: number): void;
  checkAsync(property: fc.IAsyncProperty<any>, numRuns: number): Promise<void>;
}

/** Call once per test file, at module level: `suite` is the file's path, printed with the seed. */
export function fuzzRun(suite: string, options: { searchLimitMs?: number } = {}): FuzzRun {
  const seed = runSeed(`fuzz: ${suite}`);
  const replay = `FUZZ_SEED=${seed} npx jest --runInBand ${suite}`;
  const withReplay = (err: unknown): Error => {
    if (err instanceof Error) {
      err.message = `replay: ${replay}\n${err.message}`;
      return err;
    }
    return new Error(`replay: ${replay}\n${String(err)}`);
  };
  const parameters = (numRuns: number) => ({ seed, numRuns, interruptAfterTimeLimit: options.searchLimitMs ?? DEFAULT_SEARCH_LIMIT_MS });
  return {
    seed,
    check(property, numRuns) {
      try {
        fc.assert(property, parameters(numRuns));
      } catch (err) {
        throw withReplay(err);
      }
    },
    async checkAsync(property, numRuns) {
      try {
        await fc.assert(property, parameters(numRuns));
      } catch (err) {
        throw withReplay(err);
      }
    },
  };
}
