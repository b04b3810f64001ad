// Multi-row statements in slices: SQLite binds at most 32766 parameters per statement, PostgreSQL 65535.

/** Rows per multi-row statement: a row of the widest table times this stays under both limits. */
export const CHUNK = 500;

/** `items` in slices of CHUNK (the last one shorter), in order. */
export function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}
