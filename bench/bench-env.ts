// Reading a benchmark's BENCH_* settings from the environment, with the variable's name in every error.

/** A positive number from `name`, or `fallback` when it is unset or empty. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: give a positive number`);
  return value;
}
