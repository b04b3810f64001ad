// The one condition language of microflows (flow entry, split, trigger filters, later segments and
// template blocks): plain data, Mongo-style operators evaluated by the `sift` library, never `eval`.
import { $all, $and, $eq, $exists, $gt, $gte, $in, $lt, $lte, $ne, $nin, $nor, $or, $size, createQueryTester } from 'sift';
import { InvalidConditionError } from './errors';

/**
 * A condition as authors write it, e.g.
 *   { consent.email_marketing: true, profile.behavior_score: { gte: 50 } }
 *   { any: [ { profile.tags: { contains: VIP } }, { not: { profile.orders_count: 0 } } ] }
 * Several keys in one object must all hold.
 */
export type Condition = { [key: string]: unknown };

/** What a condition can read. Paths start with one of these roots. */
export interface ConditionContext {
  profile?: Record<string, unknown>;
  consent?: Record<string, unknown>;
  event?: Record<string, unknown>;
}

export const CONDITION_ROOTS = ['profile', 'consent', 'event'] as const;

/** Operator as written → sift operator. Only these exist; anything else is a validation error. */
const OPERATORS: Record<string, string> = {
  eq: '$eq',
  ne: '$ne',
  gt: '$gt',
  gte: '$gte',
  lt: '$lt',
  lte: '$lte',
  in: '$in',
  nin: '$nin',
  exists: '$exists',
  contains: '$all',
  size: '$size',
};
export const CONDITION_OPERATORS = Object.keys(OPERATORS);
const COMBINATORS = ['all', 'any', 'not'];

// `$where` (code) and `$regex` (ReDoS) are deliberately left out of what sift may run.
const SIFT_OPERATIONS = { $all, $and, $eq, $exists, $gt, $gte, $in, $lt, $lte, $ne, $nin, $nor, $or, $size };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function translateOperand(path: string, fieldPath: string, value: unknown): unknown {
  if (!isPlainObject(value)) {
    if (Array.isArray(value)) {
      throw new InvalidConditionError(`a list cannot be compared directly; use { in: [...] } or { contains: x }`, path);
    }
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const [op, operand] of Object.entries(value)) {
    const siftOp = OPERATORS[op];
    if (!siftOp) {
      throw new InvalidConditionError(
        `unknown operator "${op}" on ${fieldPath}; use one of: ${CONDITION_OPERATORS.join(', ')}`,
        `${path}.${op}`,
      );
    }
    if ((op === 'in' || op === 'nin') && !Array.isArray(operand)) {
      throw new InvalidConditionError(`"${op}" takes a list, e.g. { ${op}: [a, b] }`, `${path}.${op}`);
    }
    if (op === 'exists' && typeof operand !== 'boolean') {
      throw new InvalidConditionError(`"exists" takes true or false`, `${path}.${op}`);
    }
    if (op === 'size' && typeof operand !== 'number') {
      throw new InvalidConditionError(`"size" takes a number`, `${path}.${op}`);
    }
    if (isPlainObject(operand)) {
      throw new InvalidConditionError(`operator "${op}" takes a value, not an object`, `${path}.${op}`);
    }
    out[siftOp] = op === 'contains' ? [operand] : operand;
  }
  if (Object.keys(out).length === 0) {
    throw new InvalidConditionError(`empty operator object on ${fieldPath}`, path);
  }
  return out;
}

/** Validates a condition and turns it into a sift query. Throws InvalidConditionError with the path at fault. */
export function toSiftQuery(condition: unknown, path = 'when'): Record<string, unknown> {
  if (!isPlainObject(condition)) {
    throw new InvalidConditionError(`a condition is a map of field: value, got ${JSON.stringify(condition)}`, path);
  }
  const clauses: Record<string, unknown>[] = [];
  for (const [key, value] of Object.entries(condition)) {
    const here = `${path}.${key}`;
    if (key === 'all' || key === 'any') {
      if (!Array.isArray(value) || value.length === 0) {
        throw new InvalidConditionError(`"${key}" takes a non-empty list of conditions`, here);
      }
      const parts = value.map((c, i) => toSiftQuery(c, `${here}[${i}]`));
      clauses.push({ [key === 'all' ? '$and' : '$or']: parts });
    } else if (key === 'not') {
      clauses.push({ $nor: [toSiftQuery(value, here)] });
    } else {
      if (key.startsWith('$')) {
        throw new InvalidConditionError(`"${key}": write operators without "$" (e.g. gte), combinators as ${COMBINATORS.join('/')}`, here);
      }
      const root = key.split('.')[0];
      if (!(CONDITION_ROOTS as readonly string[]).includes(root ?? '')) {
        throw new InvalidConditionError(
          `unknown field "${key}": paths start with ${CONDITION_ROOTS.map((r) => `${r}.`).join(', ')}`,
          here,
        );
      }
      clauses.push({ [key]: translateOperand(here, key, value) });
    }
  }
  if (clauses.length === 0) throw new InvalidConditionError('empty condition', path);
  return clauses.length === 1 ? clauses[0]! : { $and: clauses };
}

/** Throws InvalidConditionError if the condition is malformed; returns nothing otherwise. */
export function validateCondition(condition: unknown, path = 'when'): void {
  toSiftQuery(condition, path);
}

/** Every field path a condition reads, for "unknown field" checks and documentation. */
export function fieldsRead(condition: unknown): string[] {
  const out = new Set<string>();
  const walk = (c: unknown): void => {
    if (!isPlainObject(c)) return;
    for (const [key, value] of Object.entries(c)) {
      if (key === 'all' || key === 'any') (Array.isArray(value) ? value : []).forEach(walk);
      else if (key === 'not') walk(value);
      else out.add(key);
    }
  };
  walk(condition);
  return [...out];
}

export type ConditionTester = (context: ConditionContext) => boolean;

/** Compiles once; the returned tester is pure and cheap to call per profile/event. */
export function compileCondition(condition: unknown, path = 'when'): ConditionTester {
  const tester = createQueryTester(toSiftQuery(condition, path), { operations: SIFT_OPERATIONS });
  return (context) => tester(context);
}

const compiledTesters = new WeakMap<object, ConditionTester>();

/** compileCondition, once per condition object: for conditions already validated at load (flow and segment files). */
export function cachedTester(condition: Condition): ConditionTester {
  let tester = compiledTesters.get(condition);
  if (!tester) compiledTesters.set(condition, (tester = compileCondition(condition)));
  return tester;
}

/** Convenience for one-off checks; an absent condition holds. */
export function evaluateCondition(condition: unknown, context: ConditionContext): boolean {
  if (condition === undefined || condition === null) return true;
  return compileCondition(condition)(context);
}

/** Reads a dotted path (`properties.category`, `profile.cart.0.name`) from plain data; undefined where it stops. */
export function valueAtPath(root: unknown, path: string): unknown {
  let current = root;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
