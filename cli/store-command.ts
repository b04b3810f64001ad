// What the store subcommands (codes, keys, suppressions) share: opening the configured store for one piece of work
// (migrated, always closed), and reading their arguments with node:util parseArgs, a wrong one reported as a usage
// problem the command prints with its usage.
import { parseArgs } from 'node:util';
import { readConfig } from '../core/config';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';

/** An argument the command does not take: printed with the command's usage, exit code 2. */
export class UsageProblem extends Error {}

/** Runs `work` on the store DATABASE_URL (or the SQLite file) names, migrated first and closed after. */
export async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore(readConfig(process.env, process.cwd()));
  try {
    await store.migrate();
    return await work(store);
  } finally {
    await store.close();
  }
}

/** The options and at most `positionals` positional arguments of `args`; anything else is a UsageProblem. */
export function parseCommandArgs<T extends Record<string, { type: 'string' | 'boolean' }>>(args: string[], options: T, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true });
  } catch (err) {
    throw new UsageProblem(err instanceof Error ? err.message : String(err));
  }
  if (parsed.positionals.length > positionals) throw new UsageProblem(`unexpected argument "${parsed.positionals[positionals]}"`);
  return parsed;
}
