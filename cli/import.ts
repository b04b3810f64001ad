// `microflows import profiles|events <file> --map <mapping.yaml>`: loads customers or event history from a CSV or
// JSONL file into the store in batches, resumably. Rows that cannot be imported go to a report; the rest are kept.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readConfig } from '../core/config';
import { formatProblem, isMicroflowsError } from '../core/errors';
import type { FileProblem } from '../core/errors';
import type { NewEvent } from '../core/event';
import { checkHeader, checkImportMapping, IMPORT_KINDS, importRow } from '../core/import-mapping';
import type { ImportKind, ImportMapping } from '../core/import-mapping';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { ImportProgress, type ImportCounts } from './import-progress';
import { formatOf, openRowSource, type RowSource, type SourceRow } from './import-source';

export const IMPORT_ARGS = 'profiles|events <file> --map <yaml>';

export const IMPORT_USAGE = `usage: microflows import profiles|events <file.csv|file.jsonl> --map <mapping.yaml> [--report <file>] [--batch <n>] [--restart]

Loads customers (profiles: each row is an identify call) or event history (events: each row is a track call)
into the store. The mapping says which column becomes which field; see README "Importing customers and history".
Imported events are history: they update profiles but never trigger flows.

  --map <file>     the mapping (required)
  --report <file>  where rows that cannot be imported go, one JSON object a line (default <file>.bad-rows.jsonl)
  --batch <n>      rows per transaction (default 500)
  --restart        ignore the checkpoint of an interrupted import and start from the first row

An interrupted import resumes where it stopped when run again with the same file and mapping; rows are
deduplicated by message id, so rerunning a finished import adds nothing.
Exit code: 0 every row imported; 2 some rows were bad (the others are imported); 1 the import could not
run (missing file, invalid mapping, unknown column: nothing is written) or stopped midway (rerun to resume).`;

export const DEFAULT_BATCH = 500;

interface ImportOptions {
  kind: ImportKind;
  file: string;
  mapFile: string;
  reportFile: string;
  batch: number;
  restart: boolean;
}

type Parsed = { options: ImportOptions } | { help: true } | { error: string };

function parseImportArgs(args: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        map: { type: 'string' },
        report: { type: 'string' },
        batch: { type: 'string' },
        restart: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  const [kind, file, ...extra] = positionals;
  if (!kind || !(IMPORT_KINDS as readonly string[]).includes(kind)) return { error: kind ? `unknown kind "${kind}": import profiles or events` : 'say what to import: profiles or events' };
  if (!file) return { error: 'name the file to import (.csv or .jsonl)' };
  if (extra.length > 0) return { error: `unexpected argument "${extra[0]}"` };
  if (!values.map) return { error: '--map <mapping.yaml> is required: it says which column becomes which field' };
  const batch = values.batch === undefined ? DEFAULT_BATCH : Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100_000) return { error: `--batch ${values.batch}: use a whole number from 1 to 100000` };
  return {
    options: { kind: kind as ImportKind, file, mapFile: values.map, reportFile: values.report ?? `${file}.bad-rows.jsonl`, batch, restart: values.restart === true },
  };
}

/** Paths inside the working directory print relative, so `file:line` is clickable and short. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), path.resolve(file));
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');
const countOf = (n: number, noun: string): string => `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;

// --- checkpoint ------------------------------------------------------------------------------------------------

/** Written beside the input after every committed batch; valid only for the same file (size, mtime) and mapping. */
export interface ImportCheckpoint {
  version: 1;
  kind: ImportKind;
  input: { size: number; mtimeMs: number };
  mappingSha256: string;
  /** Data rows, good and bad, up to and including the last committed batch. */
  rowsDone: number;
  imported: number;
  fresh: number;
  duplicates: number;
  bad: number;
  /** The report and its length at that commit: a resumed run truncates it there and appends. */
  report: string;
  reportBytes: number;
  updatedAt: string;
}

export const checkpointPath = (file: string): string => `${file}.import-checkpoint.json`;

function readCheckpoint(file: string): ImportCheckpoint | undefined {
  let text: string;
  try {
    text = fs.readFileSync(checkpointPath(file), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as ImportCheckpoint;
    return value?.version === 1 && Number.isInteger(value.rowsDone) ? value : undefined;
  } catch {
    return undefined; // a torn or edited checkpoint: start over, the message ids make that safe
  }
}

/** Write-then-rename, so a kill mid-write leaves the previous checkpoint rather than half of one. */
function writeCheckpoint(file: string, checkpoint: ImportCheckpoint): void {
  const target = checkpointPath(file);
  fs.writeFileSync(`${target}.tmp`, `${JSON.stringify(checkpoint, null, 2)}\n`);
  fs.renameSync(`${target}.tmp`, target);
}

// --- the command -----------------------------------------------------------------------------------------------

function printProblems(problems: FileProblem[]): void {
  for (const problem of problems) console.error(formatProblem({ ...problem, file: shown(problem.file) }));
}

export async function runImport(args: string[]): Promise<number> {
  const parsed = parseImportArgs(args);
  if ('help' in parsed) {
    console.log(IMPORT_USAGE);
    return 0;
  }
  if ('error' in parsed) {
    console.error(`${parsed.error}\n\n${IMPORT_USAGE}`);
    return 1;
  }
  const options = parsed.options;

  // Everything that can be checked before the store is touched is checked first: a fatal error writes nothing.
  const format = formatOf(options.file);
  if (!format) {
    console.error(`${shown(options.file)}: error: unknown file type: import reads .csv (with a header line) or .jsonl (one JSON object a line)`);
    return 1;
  }
  const input = statFile(options.file);
  if (!input) return 1;
  let mappingSource: Buffer;
  try {
    mappingSource = fs.readFileSync(options.mapFile);
  } catch (err) {
    console.error(`${shown(options.mapFile)}: error: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err)}`);
    return 1;
  }
  const { mapping, problems } = checkImportMapping(mappingSource.toString('utf8'), options.mapFile, options.kind);
  printProblems(problems);
  if (!mapping) return 1;

  const source = await openRowSource(options.file, format).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    return undefined;
  });
  if (!source) return 1;
  try {
    if (source.header !== null) {
      if (source.header.length === 0) {
        console.error(`${shown(options.file)}: error: the file is empty: a CSV import needs a header line naming the columns`);
        return 1;
      }
      const headerProblems = checkHeader(mapping, source.header, `${shown(options.file)}:${source.headerLine}`);
      if (headerProblems.length > 0) {
        printProblems(headerProblems);
        return 1;
      }
    }
    const config = readConfig(process.env, process.cwd());
    const store = openStore(config);
    try {
      await store.migrate();
      return await importRows({ options, mapping, mappingSha256: sha256(mappingSource), input, source, store });
    } finally {
      await store.close();
    }
  } finally {
    source.close();
  }
}

function statFile(file: string): { size: number; mtimeMs: number } | undefined {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      console.error(`${shown(file)}: error: not a file`);
      return undefined;
    }
    return { size: stat.size, mtimeMs: stat.mtimeMs };
  } catch (err) {
    console.error(`${shown(file)}: error: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err)}`);
    return undefined;
  }
}

interface ImportRun {
  options: ImportOptions;
  mapping: ImportMapping;
  mappingSha256: string;
  input: { size: number; mtimeMs: number };
  source: RowSource;
  store: Store;
}

/** The checkpoint to resume from, or undefined to start at the first row (saying why, when one was ignored). */
function resumePoint(run: ImportRun): ImportCheckpoint | undefined {
  const { options, input, mappingSha256 } = run;
  const found = readCheckpoint(options.file);
  if (!found) return undefined;
  const where = shown(checkpointPath(options.file));
  if (options.restart) {
    console.log(`--restart: ignoring ${where} (row ${found.rowsDone} was reached); starting from the first row`);
    return undefined;
  }
  const changed =
    found.kind !== options.kind ? `it is for "import ${found.kind}"`
    : found.input?.size !== input.size || found.input?.mtimeMs !== input.mtimeMs ? 'the file changed since'
    : found.mappingSha256 !== mappingSha256 ? 'the mapping changed since'
    : undefined;
  if (changed) {
    console.log(`ignoring ${where}: ${changed}; starting from the first row (rows already imported are recognised by message id)`);
    return undefined;
  }
  return found;
}

async function importRows(run: ImportRun): Promise<number> {
  const { options, mapping, source, store } = run;
  const checkpoint = resumePoint(run);
  const skip = checkpoint?.rowsDone ?? 0;
  const totals = {
    imported: checkpoint?.imported ?? 0,
    fresh: checkpoint?.fresh ?? 0,
    duplicates: checkpoint?.duplicates ?? 0,
    bad: checkpoint?.bad ?? 0,
  };
  const report = options.reportFile;
  let reportBytes = 0;
  if (checkpoint && checkpoint.report === report) {
    // Bad rows after the last commit may have been appended before the process died: they are read again.
    reportBytes = Math.min(checkpoint.reportBytes, fs.existsSync(report) ? fs.statSync(report).size : 0);
    if (fs.existsSync(report)) fs.truncateSync(report, reportBytes);
  } else {
    fs.rmSync(report, { force: true });
  }
  if (checkpoint) {
    const earlier = checkpoint.report !== report && checkpoint.bad > 0 ? `; its ${countOf(checkpoint.bad, 'bad row')} are in ${shown(checkpoint.report)}` : '';
    console.log(`resuming from row ${skip + 1}: rows 1-${skip} were committed by an earlier run${earlier} (--restart starts over)`);
  }

  const receivedAt = Date.now();
  const progress = new ImportProgress({ out: process.stderr, size: run.input.size });
  const counts: ImportCounts = { rows: skip, processed: 0, bad: totals.bad, bytes: 0 };
  progress.start(() => ({ ...counts, bytes: source.bytesRead() }));

  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);

  let events: NewEvent[] = [];
  let badLines: string[] = [];
  let rowsDone = skip;
  let lastRow = skip;
  const flush = async (): Promise<void> => {
    if (lastRow === rowsDone) return;
    if (events.length > 0) {
      const results = await store.recordEvents(events, { needsDispatch: () => false });
      for (const result of results) {
        if (result.duplicate) totals.duplicates += 1;
        else totals.fresh += 1;
      }
      totals.imported += results.length;
    }
    if (badLines.length > 0) {
      const text = badLines.join('');
      fs.appendFileSync(report, text);
      reportBytes += Buffer.byteLength(text);
      totals.bad += badLines.length;
    }
    rowsDone = lastRow;
    events = [];
    badLines = [];
    writeCheckpoint(options.file, {
      version: 1,
      kind: options.kind,
      input: run.input,
      mappingSha256: run.mappingSha256,
      rowsDone,
      ...totals,
      report,
      reportBytes,
      updatedAt: new Date().toISOString(),
    });
  };

  const badRow = (row: SourceRow, reason: string): void => {
    const line = row.record ? { row: row.row, line: row.line, reason, record: row.record } : { row: row.row, line: row.line, reason, raw: row.raw };
    badLines.push(`${JSON.stringify(line)}\n`);
    counts.bad += 1;
  };

  try {
    for await (const row of source.rows) {
      counts.rows = row.row;
      if (row.row <= skip) continue;
      counts.processed += 1;
      lastRow = row.row;
      if (row.record) {
        try {
          events.push(importRow(mapping, row.record, { receivedAt, sha256 }));
        } catch (err) {
          if (!isMicroflowsError(err) || err.status !== 400) throw err;
          badRow(row, err.message);
        }
      } else {
        badRow(row, row.problem ?? 'unreadable row');
      }
      if (events.length + badLines.length >= options.batch) await flush();
      if (interrupted) break;
    }
    await flush();
  } catch (err) {
    progress.stop();
    const resume = rowsDone > 0 ? `; rows 1-${rowsDone} are committed: run the same command again to resume` : '';
    console.error(`import stopped at row ${lastRow}: ${err instanceof Error ? err.message : String(err)}${resume}`);
    return 1;
  } finally {
    progress.stop();
    process.removeListener('SIGINT', onInterrupt);
    process.removeListener('SIGTERM', onInterrupt);
  }

  const elapsed = progress.elapsedMs();
  const rate = elapsed > 0 ? Math.round((counts.processed * 1000) / elapsed) : counts.processed;
  const summary =
    `${countOf(totals.imported, 'row')} (${totals.fresh.toLocaleString('en-US')} new, ` +
    `${totals.duplicates.toLocaleString('en-US')} already present), ${countOf(totals.bad, 'bad row')} in ${(elapsed / 1000).toFixed(1)}s ` +
    `(${rate.toLocaleString('en-US')} rows/s)`;
  if (interrupted) {
    console.log(`interrupted after row ${rowsDone}: ${summary} so far; run the same command again to resume`);
    return 130;
  }
  fs.rmSync(checkpointPath(options.file), { force: true });
  console.log(`imported ${summary}`);
  if (totals.bad > 0) {
    console.log(`${countOf(totals.bad, 'bad row')} not imported: see ${shown(report)} (one JSON object a line: row, line, reason, record)`);
    return 2;
  }
  fs.rmSync(report, { force: true });
  return 0;
}
