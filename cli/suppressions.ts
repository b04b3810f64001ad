// `microflows suppressions list|add|remove|import|export`: the suppression list of the store (core/suppression), by
// address hash, so an erased address stays listed as its hash. Import and export are CSV, the format ESPs export
// their own suppression lists in (an `email` column is read as `address`).
import { readFileSync, writeFileSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { parseDuration } from '../core/duration';
import { isMicroflowsError } from '../core/errors';
import { ENTRY_FIELDS, SUPPRESSION_REASONS, hashOfAddressOrHash, type SuppressionEntry, type SuppressionReason } from '../core/suppression';
import { parseCommandArgs, UsageProblem, withStore } from './store-command';

export const SUPPRESSIONS_ARGS = 'list [--reason <r>] [--json] | add <address> | remove <address> | import <file.csv> | export [file.csv]';

export const SUPPRESSIONS_USAGE = `usage: microflows suppressions list [--reason <reason>] [--limit <n>] [--after <cursor>] [--json]
       microflows suppressions add <address> [--reason manual] [--scope all|marketing] [--expires <duration>]
       microflows suppressions remove <address or address_hash> [--reason <reason>]
       microflows suppressions import <file.csv>
       microflows suppressions export [file.csv]

  list     the entries, by address hash: address (empty once the customer was erased), reason, scope, source, created,
           expires; --reason keeps one reason, --limit (default 100) and --after page through them; --json prints JSON
  add      suppresses an address: --reason (default manual), --scope all (no email of any kind, the default) or
           marketing (transactional email still goes), --expires e.g. 30d (default: until removed)
  remove   removes an address's entries (all of them, or --reason's): how a customer who bounced gets email again
  import   reads a CSV with a header row: address (or email) or address_hash, and optionally reason (default
           import), scope, source, created_at and expires_at (ISO 8601 or epoch ms); every row is checked first, and
           a bad one writes nothing, naming its line and field
  export   writes every entry (expired ones too) as CSV with the columns import reads, to the file or stdout
Reasons: ${SUPPRESSION_REASONS.join(', ')}. Entries from events (bounces, complaints, unsubscribes) are written as
they are recorded; MICROFLOWS_SOFT_BOUNCE_LIMIT, _WINDOW and _SUPPRESSION say when soft bounces suppress.
Reads the store (DATABASE_URL, or the SQLite file).`;


function reasonFlag(value: unknown): SuppressionReason | undefined {
  if (value === undefined) return undefined;
  if (!(SUPPRESSION_REASONS as readonly unknown[]).includes(value)) throw new UsageProblem(`--reason: one of ${SUPPRESSION_REASONS.join(', ')}`);
  return value as SuppressionReason;
}

const when = (at: number | null): string => (at === null ? '' : new Date(at).toISOString());

/** One CSV field: quoted when it holds a comma, quote or line break; a leading =, +, - or @ is quoted too, so a spreadsheet reads text, not a formula. */
function csvField(text: string): string {
  return /[",\r\n]|^[=+\-@]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function entriesCsv(entries: SuppressionEntry[]): string {
  const rows = entries.map((e) => [e.address ?? '', e.addressHash, e.reason, e.scope, e.source, when(e.createdAt), when(e.expiresAt)]);
  return [[...ENTRY_FIELDS], ...rows].map((row) => row.map(csvField).join(',')).join('\n') + '\n';
}

function table(entries: SuppressionEntry[]): string {
  const header = ['ADDRESS', 'HASH', 'REASON', 'SCOPE', 'SOURCE', 'CREATED', 'EXPIRES'];
  const rows = entries.map((e) => [e.address ?? '(erased)', `${e.addressHash.slice(0, 12)}…`, e.reason, e.scope, e.source, when(e.createdAt), when(e.expiresAt) || '-']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!))).join('  ')).join('\n');
}

async function list(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { reason: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' }, json: { type: 'boolean' } }, 0);
  const limit = values.limit === undefined ? 100 : Number(values.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new UsageProblem('--limit: a whole number of at least 1');
  const page = await withStore((store) => store.listSuppressions({ reason: reasonFlag(values.reason), after: values.after ?? null, limit }));
  if (values.json) process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
  else if (page.entries.length === 0) console.log('no suppression entries');
  else console.log(`${table(page.entries)}${page.next ? `\nmore: microflows suppressions list --after ${page.next}` : ''}`);
  return 0;
}

async function add(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { reason: { type: 'string' }, scope: { type: 'string' }, expires: { type: 'string' } }, 1);
  const [address] = positionals;
  if (address === undefined) throw new UsageProblem('name the address to suppress');
  const now = Date.now();
  let expiresAt: number | undefined;
  if (values.expires !== undefined) {
    try {
      expiresAt = now + parseDuration(values.expires);
    } catch (err) {
      throw new UsageProblem(`--expires: ${(err as Error).message}`);
    }
  }
  const row = { address, reason: values.reason, scope: values.scope, expires_at: expiresAt };
  const flagOf: Record<string, string> = { address: '<address>', reason: '--reason', scope: '--scope', expires_at: '--expires' };
  await withStore((store) => store.importSuppressions([row], { reason: 'manual', source: 'cli', now }, (_index, field) => flagOf[field] ?? field));
  console.log(`Suppressed ${address.trim().toLowerCase()} (${values.reason ?? 'manual'}, ${values.scope ?? 'default scope'}${expiresAt ? `, until ${when(expiresAt)}` : ''}).`);
  return 0;
}

async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { reason: { type: 'string' } }, 1);
  const [given] = positionals;
  if (given === undefined || given.trim() === '') throw new UsageProblem('name the address (or its address_hash, as listed) to remove');
  const reason = reasonFlag(values.reason);
  const removed = await withStore((store) => store.removeSuppressions({ addressHash: hashOfAddressOrHash(given), ...(reason ? { reason } : {}) }));
  if (removed === 0) {
    console.error(`no suppression entry${reason ? ` of reason ${reason}` : ''} for "${given}": microflows suppressions list shows them`);
    return 1;
  }
  console.log(`Removed ${removed} entr${removed === 1 ? 'y' : 'ies'} for ${given}.`);
  return 0;
}

async function importFile(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs(args, {}, 1);
  const [file] = positionals;
  if (file === undefined) throw new UsageProblem('name the CSV file to import');
  let records: Array<Record<string, string>>;
  try {
    records = parseCsv(readFileSync(file), { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Array<Record<string, string>>;
  } catch (err) {
    console.error(`${file}: ${(err as Error).message}`);
    return 1;
  }
  // ESP exports call the address column "email"; the rest keeps our names.
  const rows = records.map((record) => {
    const { email, ...rest } = record;
    return email !== undefined && rest.address === undefined ? { address: email, ...rest } : record;
  });
  // Line numbers as an editor shows them: the header is line 1 (a quoted field over several lines shifts this).
  const imported = await withStore((store) => store.importSuppressions(rows, { reason: 'import', source: 'import', now: Date.now() }, (index, field) => `${file}:${index + 2}: ${field}`));
  console.log(`Imported ${imported} entr${imported === 1 ? 'y' : 'ies'} from ${file}.`);
  return 0;
}

async function exportFile(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs(args, {}, 1);
  const [file] = positionals;
  const entries = await withStore((store) => store.exportSuppressions());
  const csv = entriesCsv(entries);
  if (file === undefined) process.stdout.write(csv);
  else {
    writeFileSync(file, csv);
    console.log(`Exported ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} to ${file}.`);
  }
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { list, add, remove, import: importFile, export: exportFile };

export async function runSuppressions(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const command = sub === undefined ? undefined : COMMANDS[sub];
  if (!command) {
    console.error(`${sub === undefined ? 'say what to do' : `unknown suppressions command "${sub}"`}: list, add, remove, import or export\n${SUPPRESSIONS_USAGE}`);
    return 1;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof UsageProblem) {
      console.error(`${err.message}\n${SUPPRESSIONS_USAGE.split('\n').find((line) => line.includes(`suppressions ${sub}`))?.replace(/^\s*(usage:)?\s*/, 'usage: ')}`);
      return 1;
    }
    // A bad entry (core/suppression) names its field or line; a bad cursor its option.
    if (isMicroflowsError(err) && err.status === 400) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}
