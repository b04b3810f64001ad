// Unique offer codes (`{{offer_code pool="winback-10"}}`): what a pool id and a code may be, reading a file of codes
// (one per line, or a CSV whose first column is the code) with every bad line named, the pools a template's
// offer_code calls name, and when a pool is running low. Pure: the CLI reads the file, the store keeps the codes.
import { parse as parseCsv } from 'csv-parse/sync';
import { InvalidFileError, type FileProblem } from './errors';

/** A pool id: kebab-case, as it is written in templates and on the command line. */
export const OFFER_POOL_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** The longest code, in characters. */
export const OFFER_CODE_MAX_LENGTH = 64;
/** How many bad lines an import error lists before it only counts the rest. */
const LISTED_PROBLEMS = 20;
/** A pool is low when no more than this many codes are left (or `LOW_FRACTION` of its codes, when that is more). */
export const LOW_MINIMUM = 10;
export const LOW_FRACTION = 0.1;

/** Why `pool` is not a pool id, or null when it is one. */
export function offerPoolProblem(pool: string): string | null {
  if (OFFER_POOL_ID.test(pool)) return null;
  return `"${pool}" is not a pool id: 1-64 lower-case letters, digits and "-", starting with a letter or digit (e.g. winback-10)`;
}

/** Why `code` is not an offer code, or null when it is one: 1-64 printable characters, none of them a space. */
export function offerCodeProblem(code: string): string | null {
  const characters = [...code];
  if (characters.length === 0) return 'the code is empty';
  if (characters.length > OFFER_CODE_MAX_LENGTH) return `the code "${characters.slice(0, 16).join('')}…" is ${characters.length} characters long: a code has at most ${OFFER_CODE_MAX_LENGTH}`;
  const space = characters.find((c) => /\s/u.test(c));
  if (space !== undefined) return `the code "${code}" holds a space: a code is printable characters without spaces (CSV-quote a code holding a comma, not one holding a space)`;
  const unprintable = characters.find((c) => /\p{C}/u.test(c));
  if (unprintable !== undefined) return `the code ${JSON.stringify(code)} holds the unprintable character U+${unprintable.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return null;
}

export interface OfferCodeFile {
  /** The codes in file order, each once. */
  codes: string[];
  /** Lines that repeated a code earlier in the file (counted as already there). */
  repeated: number;
}

/**
 * The codes of a file: one per line, or a CSV whose first column is the code, with or without a `code` header. Blank
 * lines and the spaces around a code are ignored; a code holding a comma or a quote is written CSV-quoted. Any bad
 * line makes the whole file an InvalidFileError naming `file:line` and what is wrong, so nothing of it is imported.
 */
export function readOfferCodeFile(file: string, text: string): OfferCodeFile {
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = parseCsv(text, { info: true, relax_column_count: true, relax_quotes: true, trim: true, skip_empty_lines: true, bom: true }) as typeof records;
  } catch (err) {
    const line = (err as { lines?: number }).lines;
    throw new InvalidFileError([{ file, line: line ?? 1, severity: 'error', message: `not a list of codes or a CSV: ${(err as Error).message}` }]);
  }
  const problems: FileProblem[] = [];
  const seen = new Set<string>();
  const codes: string[] = [];
  let repeated = 0;
  records.forEach(({ record, info }, index) => {
    const code = record[0] ?? '';
    // A header row names its first column `code`.
    if (index === 0 && code.toLowerCase() === 'code') return;
    if (record.every((field) => field === '')) return;
    const problem = code === '' ? 'the code (the first column) is empty' : offerCodeProblem(code);
    if (problem) {
      problems.push({ file, line: info.lines, severity: 'error', message: problem });
      return;
    }
    if (seen.has(code)) repeated += 1;
    else {
      seen.add(code);
      codes.push(code);
    }
  });
  if (problems.length > LISTED_PROBLEMS) {
    const more = problems.length - LISTED_PROBLEMS;
    problems.splice(LISTED_PROBLEMS, more, { file, line: problems[LISTED_PROBLEMS]!.line, severity: 'error', message: `and ${more} more bad line${more === 1 ? '' : 's'}` });
  }
  if (problems.length > 0) throw new InvalidFileError(problems);
  return { codes, repeated };
}

/** A pool's figures, as GET /api/codes answers them. */
export interface OfferPoolStats {
  pool: string;
  total: number;
  claimed: number;
  remaining: number;
  /** remaining <= max(LOW_MINIMUM, LOW_FRACTION of total): time to import more. */
  low: boolean;
}

export function offerPoolStats(pool: string, total: number, claimed: number): OfferPoolStats {
  const remaining = Math.max(0, total - claimed);
  return { pool, total, claimed, remaining, low: remaining <= Math.max(LOW_MINIMUM, total * LOW_FRACTION) };
}

const importMore = (pool: string) => `import more with microflows codes import ${pool} <file>`;

/**
 * Which warnings a process has logged about its pools: one when a claim leaves a pool low, one more when it is empty.
 * A pool that grew (more codes were imported) and is no longer low is forgotten, so it warns again when it runs low;
 * figures read by concurrent claims arrive out of order, so a pool of the same size seen above the threshold is not.
 */
export class OfferPoolWatch {
  private readonly warned = new Map<string, { state: 'low' | 'empty'; total: number }>();

  /** The warning to log after a claim left the pool at `stats`, or null. */
  observe(stats: OfferPoolStats): string | null {
    const before = this.warned.get(stats.pool);
    if (!stats.low) {
      if (before && stats.total > before.total) this.warned.delete(stats.pool);
      return null;
    }
    if (before && stats.total > before.total) this.warned.delete(stats.pool);
    const state = this.warned.get(stats.pool)?.state;
    if (stats.remaining === 0) {
      if (state === 'empty') return null;
      this.warned.set(stats.pool, { state: 'empty', total: stats.total });
      return `[codes] pool "${stats.pool}" is empty: 0 of ${stats.total} codes left, and sends show their fallback; ${importMore(stats.pool)}`;
    }
    if (state !== undefined) return null;
    this.warned.set(stats.pool, { state: 'low', total: stats.total });
    return `[codes] pool "${stats.pool}" is running low: ${stats.remaining} of ${stats.total} codes left; ${importMore(stats.pool)}`;
  }
}

/** One `offer_code` call of a template: its pool, or what is wrong with it. */
export type OfferCodeCall = { line: number; pool: string } | { line: number; problem: string };

const USAGE =
  'write {{offer_code pool="winback-10"}} with the pool id as a quoted literal, or pool=data.<key> to take it from the flow step\'s data (the send claims the code before rendering, so the pool cannot come from the profile or the event)';

/** `pool=data.code_pool`: the pool named by the send step's `data` in the flow file (reviewed config, not event data). */
const DATA_POOL = /^data\.([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * The pools a send claims from: the template's literal pools, and the ones its `pool=data.<key>` calls name in the send
 * step's data. A data key that is missing or not a pool id names no pool: the helper finds no code and falls back.
 */
export function resolveOfferPools(pools: readonly string[], data: Record<string, unknown> | undefined): string[] {
  const resolved = new Set<string>();
  for (const pool of pools) {
    const key = DATA_POOL.exec(pool)?.[1];
    if (key === undefined) resolved.add(pool);
    else {
      const value = data?.[key];
      if (typeof value === 'string' && offerPoolProblem(value) === null) resolved.add(value);
    }
  }
  return [...resolved].sort();
}

function checkCall(node: hbs.AST.MustacheStatement | hbs.AST.SubExpression | hbs.AST.BlockStatement): OfferCodeCall {
  const line = node.loc.start.line;
  const pairs = node.hash?.pairs ?? [];
  const pool = pairs.find((pair) => pair.key === 'pool');
  if (node.type === 'BlockStatement') return { line, problem: `offer_code is not a block: ${USAGE}` };
  if (node.params.length > 0) return { line, problem: `offer_code takes no positional argument: ${USAGE}` };
  const others = pairs.filter((pair) => pair.key !== 'pool').map((pair) => pair.key);
  if (others.length > 0) return { line, problem: `offer_code takes only pool=, not ${others.map((k) => `${k}=`).join(', ')}: ${USAGE}` };
  if (!pool) return { line, problem: `offer_code needs its pool: ${USAGE}` };
  if (pool.value.type === 'PathExpression' && DATA_POOL.test((pool.value as hbs.AST.PathExpression).original)) return { line, pool: (pool.value as hbs.AST.PathExpression).original };
  if (pool.value.type !== 'StringLiteral') return { line, problem: `offer_code's pool must be a literal or data.<key>, not ${pool.value.type === 'PathExpression' ? `the field ${(pool.value as hbs.AST.PathExpression).original}` : pool.value.type}: ${USAGE}` };
  const id = (pool.value as hbs.AST.StringLiteral).value;
  const problem = offerPoolProblem(id);
  return problem ? { line, problem: `offer_code pool=: ${problem}` } : { line, pool: id };
}

/** Every `offer_code` call of a parsed template (Handlebars.parse), wherever it is: output, subexpression, block. */
export function offerCodeCalls(program: hbs.AST.Program): OfferCodeCall[] {
  const calls: OfferCodeCall[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const candidate = node as { type?: string; path?: { type?: string; original?: unknown } };
    if ((candidate.type === 'MustacheStatement' || candidate.type === 'SubExpression' || candidate.type === 'BlockStatement') && candidate.path?.type === 'PathExpression' && candidate.path.original === 'offer_code') {
      calls.push(checkCall(node as hbs.AST.MustacheStatement));
    }
    for (const [key, value] of Object.entries(node)) if (key !== 'loc') visit(value);
  };
  visit(program);
  return calls;
}

/** What a preview shows for each pool a template names: no code is claimed. */
export const PREVIEW_OFFER_CODE = 'PREVIEW-CODE';

export function previewOfferCodes(pools: readonly string[], data?: Record<string, unknown>): ReadonlyMap<string, string> {
  return new Map(resolveOfferPools(pools, data).map((pool) => [pool, PREVIEW_OFFER_CODE]));
}
