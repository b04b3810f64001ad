// The seed of a seeded-random property test: a fresh one each run, or FUZZ_SEED's to replay a failure. Printed
// when taken, as one plain line, and meant to be part of every failure message, so a failure found once can be
// run again exactly.
import { randomInt } from 'node:crypto';

export function runSeed(suite: string): number {
  const text = process.env.FUZZ_SEED;
  let seed: number;
  if (text === undefined || text.trim() === '') seed = randomInt(0, 0x7fffffff);
  else {
    seed = Number(text);
    // Anything but an integer would silently run another sequence than the one that failed.
    if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer such as 12345 (as a failure prints it), got ${JSON.stringify(text)}`);
  }
  process.stdout.write(`${suite}: seed ${seed} (replay with FUZZ_SEED=${seed})\n`);
  return seed;
}
