// `microflows codes import <pool> <file>` and `microflows codes list`: the offer code pools `{{offer_code pool="…"}}`
// hands codes out of (core/offer-codes). An import checks every line of the file first and writes all of it in one
// transaction, or nothing.
import { readFileSync } from 'node:fs';
import { isMicroflowsError } from '../core/errors';
import { LOW_FRACTION, LOW_MINIMUM, offerPoolProblem, readOfferCodeFile, type OfferPoolStats } from '../core/offer-codes';
import { parseCommandArgs, UsageProblem, withStore } from './store-command';

export const CODES_ARGS = 'import <pool> <file> | list [--json]';

export const CODES_USAGE = `usage: microflows codes import <pool> <file>
       microflows codes list [--json]

  import   adds the codes of <file> to the pool <pool> (created by its first import): one code per line, or a CSV
           whose first column is the code, with or without a "code" header; blank lines and the spaces around a
           code are ignored, and a code holding a comma or a quote is CSV-quoted. A pool id is 1-64 lower-case
           letters, digits and "-"; a code is 1-64 printable characters without spaces. Every line is checked
           first: a bad one is reported as file:line and nothing is imported. Codes the pool already holds are
           skipped. Prints: imported N codes into pool P (M already there); P has K unclaimed
  list     each pool's codes: total, claimed, remaining, and whether it is low (at most ${LOW_MINIMUM} codes, or ${LOW_FRACTION * 100}% of
           them, left); --json prints what GET /api/codes answers
Templates show a pool's codes with {{offer_code pool="<pool>"}}: each send is given one code of its own, kept
when the send is retried. Reads the store (DATABASE_URL, or the SQLite file).`;


async function importFile(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs(args, {}, 2);
  const [pool, file] = positionals;
  if (pool === undefined || file === undefined) throw new UsageProblem('name the pool and the file of codes');
  const badPool = offerPoolProblem(pool);
  if (badPool) throw new UsageProblem(`<pool>: ${badPool}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    console.error(`${file}: cannot read it: ${(err as Error).message}`);
    return 1;
  }
  let read: ReturnType<typeof readOfferCodeFile>;
  try {
    read = readOfferCodeFile(file, text);
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    console.error(`${err.message}\nnothing was imported into pool ${pool}: fix the lines named and run the import again`);
    return 1;
  }
  const done = await withStore((store) => store.importOfferCodes(pool, read.codes, Date.now()));
  const already = done.alreadyThere + read.repeated;
  console.log(`imported ${done.imported} code${done.imported === 1 ? '' : 's'} into pool ${pool} (${already} already there); ${pool} has ${done.unclaimed} unclaimed`);
  return 0;
}

function table(pools: OfferPoolStats[]): string {
  const header = ['POOL', 'TOTAL', 'CLAIMED', 'REMAINING', 'LOW'];
  const rows = pools.map((p) => [p.pool, String(p.total), String(p.claimed), String(p.remaining), p.low ? 'low' : '']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

async function list(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 0);
  const pools = await withStore((store) => store.offerCodePools());
  if (values.json) process.stdout.write(`${JSON.stringify({ pools }, null, 2)}\n`);
  else console.log(pools.length === 0 ? 'no offer code pools: import codes with microflows codes import <pool> <file>' : table(pools));
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { import: importFile, list };

export async function runCodes(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const command = sub === undefined ? undefined : COMMANDS[sub];
  if (!command) {
    console.error(`${sub === undefined ? 'say what to do' : `unknown codes command "${sub}"`}: import or list\n${CODES_USAGE}`);
    return 1;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof UsageProblem) {
      console.error(`${err.message}\n${CODES_USAGE.split('\n').find((line) => line.includes(`codes ${sub}`))?.replace(/^\s*(usage:)?\s*/, 'usage: ')}`);
      return 1;
    }
    // A bad line of the file (InvalidFileError) names file:line; a bad code given to the store its index.
    if (isMicroflowsError(err) && err.status < 500) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}
