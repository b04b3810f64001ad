// `microflows import profiles|events <file> --map <mapping.yaml>`: loads customers or event history from a CSV or
// JSONL file into the store in batches, resumably. Rows that cannot be imported go to a report; the rest are kept.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readConfig, type Config } from '../core/config';
import { truncateEventIp } from '../core/ip-truncation';
import { formatProblem, isMicroflowsError } from '../core/errors';
import type { FileProblem } from '../core/errors';
import type { NewEvent } from '../core/event';
import { BEHAVIOR_WEIGHTS } from '../core/behavior';
import type { FlowDefinition } from '../core/flow-types';
import { checkHeader, checkImportMapping, closestEventName, eventNamesReadBy, IMPORT_KINDS, importRow, RowSkipped, unusedEventNames } from '../core/import-mapping';
import type { ImportKind, ImportMapping } from '../core/import-mapping';
import type { SegmentDefinition } from '../core/segment-definition';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { ImportProgress, type ImportCounts } from './import-progress';
import { loadFlowFiles } from './project-files';
import { checkSegments, segmentIdsIn } from './segment-files';
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
An events import ends with the event names it brought in and their counts, and warns about names that no
flow, segment or computed profile field reads (map a shop's own names with event: { column, map }).
Exit code: 0 every row imported or skipped by the mapping (unmapped: skip), warnings included; 2 some rows
were bad (the others are imported); 1 the import could not run (missing file, invalid mapping, unknown
column: nothing is written) or stopped midway (rerun to resume).`;

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
  /** Rows the mapping skipped (unmapped: skip), by reason; absent in checkpoints from before skipping existed. */
  skipped?: Record<string, number>;
  /** Event names of the rows imported so far, with their counts (events imports). */
  eventNames?: Record<string, number>;
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
      return await importRows({ options, mapping, mappingSha256: sha256(mappingSource), input, source, store, config });
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
  config: Config;
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
  const skipped = new Map<string, number>(Object.entries(checkpoint?.skipped ?? {}));
  const eventNames = new Map<string, number>(Object.entries(checkpoint?.eventNames ?? {}));
  // Counted per batch and added when the batch commits, so a checkpoint never counts rows it did not commit.
  let batchSkipped = new Map<string, number>();
  let batchNames = new Map<string, number>();
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
      // An export's context.ip is an IP like any other: stored as ingest stores it (MICROFLOWS_IP_TRUNCATION).
      const results = await store.recordEvents(run.config.ipTruncation ? events.map(truncateEventIp) : events, { needsDispatch: () => false });
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
    addCounts(skipped, batchSkipped);
    addCounts(eventNames, batchNames);
    rowsDone = lastRow;
    events = [];
    badLines = [];
    batchSkipped = new Map();
    batchNames = new Map();
    writeCheckpoint(options.file, {
      version: 1,
      kind: options.kind,
      input: run.input,
      mappingSha256: run.mappingSha256,
      rowsDone,
      ...totals,
      skipped: Object.fromEntries(skipped),
      eventNames: Object.fromEntries(eventNames),
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
          const event = importRow(mapping, row.record, { receivedAt, sha256 });
          events.push(event);
          if (event.name !== null) batchNames.set(event.name, (batchNames.get(event.name) ?? 0) + 1);
        } catch (err) {
          if (err instanceof RowSkipped) batchSkipped.set(err.message, (batchSkipped.get(err.message) ?? 0) + 1);
          else if (isMicroflowsError(err) && err.status === 400) badRow(row, err.message);
          else throw err;
        }
      } else {
        badRow(row, row.problem ?? 'unreadable row');
      }
      if (lastRow - rowsDone >= options.batch) await flush();
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
  const skippedRows = total(skipped);
  const summary =
    `${countOf(totals.imported, 'row')} (${totals.fresh.toLocaleString('en-US')} new, ` +
    `${totals.duplicates.toLocaleString('en-US')} already present), ${countOf(totals.bad, 'bad row')}` +
    `${skippedRows > 0 ? `, ${skippedRows.toLocaleString('en-US')} skipped` : ''} in ${(elapsed / 1000).toFixed(1)}s ` +
    `(${rate.toLocaleString('en-US')} rows/s)`;
  if (interrupted) {
    console.log(`interrupted after row ${rowsDone}: ${summary} so far; run the same command again to resume`);
    return 130;
  }
  fs.rmSync(checkpointPath(options.file), { force: true });
  console.log(`imported ${summary}`);
  if (skippedRows > 0) printSkipped(skipped);
  if (options.kind === 'events') reportEventNames(eventNames, run);
  if (totals.bad > 0) {
    console.log(`${countOf(totals.bad, 'bad row')} not imported: see ${shown(report)} (one JSON object a line: row, line, reason, record)`);
    return 2;
  }
  fs.rmSync(report, { force: true });
  return 0;
}

// --- the summary -----------------------------------------------------------------------------------------------

const total = (counts: ReadonlyMap<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

function addCounts(into: Map<string, number>, from: ReadonlyMap<string, number>): void {
  for (const [key, n] of from) into.set(key, (into.get(key) ?? 0) + n);
}

/** Most rows first; equal counts by name, so the output is the same on every run. */
const byCount = (counts: ReadonlyMap<string, number>): Array<[string, number]> => [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** Lines of a count summary; an export with hundreds of distinct values lists the most frequent. */
const MAX_LISTED = 20;

function printCounts(counts: ReadonlyMap<string, number>, noun: string): void {
  const sorted = byCount(counts);
  const listed = sorted.slice(0, MAX_LISTED);
  const width = Math.max(...listed.map(([, n]) => n.toLocaleString('en-US').length));
  for (const [name, n] of listed) console.log(`  ${n.toLocaleString('en-US').padStart(width)}  ${name}`);
  const rest = sorted.slice(MAX_LISTED);
  if (rest.length > 0) console.log(`  ... and ${countOf(rest.length, `more ${noun}`)} (${countOf(total(new Map(rest)), 'row')})`);
}

function printSkipped(skipped: ReadonlyMap<string, number>): void {
  console.log(`skipped by the mapping (not imported, not bad):`);
  printCounts(skipped, 'reason');
}

/** What reads event names in this project: the flows and segments `start` would load. */
function projectReaders(config: Config): { flows: FlowDefinition[]; segments: SegmentDefinition[]; note: string } {
  const where = `flows in ${shown(config.flowsDir)}/, segments in ${shown(config.segmentsDir)}/`;
  try {
    const flows = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
    const segments = checkSegments(config.segmentsDir);
    const broken = new Set([...flows.problems, ...segments.problems].filter((p) => p.severity === 'error').map((p) => p.file));
    const skippedFiles = broken.size > 0 ? `; ${countOf(broken.size, 'file')} with errors not read (microflows validate)` : '';
    return { flows: flows.flows, segments: segments.segments, note: `${where}${skippedFiles}` };
  } catch (err) {
    return { flows: [], segments: [], note: `${where} could not be read: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * Prints the event names the import brought in, with their counts, and warns (stderr) about names that nothing
 * reads: an export in a shop's own vocabulary (view, cart, purchase) imports fine and then computes nothing.
 */
function reportEventNames(eventNames: ReadonlyMap<string, number>, run: ImportRun): void {
  if (eventNames.size === 0) return;
  console.log(`event names imported (${countOf(eventNames.size, 'name')}):`);
  printCounts(eventNames, 'name');

  const { flows, segments, note } = projectReaders(run.config);
  const sorted = byCount(eventNames);
  const unused = unusedEventNames(sorted.map(([name]) => name), flows, segments);
  if (unused.length === 0) return;
  const listed = unused.slice(0, MAX_LISTED);
  const more = unused.length > MAX_LISTED ? ` and ${unused.length - MAX_LISTED} more` : '';
  const advice = renamingAdvice(run.mapping, unused, shown(run.options.mapFile));
  if (unused.length === eventNames.size) {
    const arrived = eventNames.size === 1 ? `the only event name that arrived (${listed[0]}) is used by no` : `none of the ${eventNames.size} event names that arrived (${listed.join(', ')}${more}) is used by a`;
    const again = run.mapping.messageId
      ? 'then import into a fresh store: with message_id mapped, the renamed rows would be taken as already present'
      : 'then import again: the rows stored under the old names stay, and are read by nothing';
    console.error(
      `warning: ${arrived} flow, segment or computed field (${note}): the ${countOf(total(eventNames), 'row')} were stored, but nothing reads them.\n` +
        advice.map((line) => `  ${line[0]!.toUpperCase()}${line.slice(1)};\n`).join('') +
        `  ${again} (see README "Importing customers and history").`,
    );
    return;
  }
  const known = [...eventNamesReadBy(flows, segments), ...Object.keys(BEHAVIOR_WEIGHTS)];
  const described = listed.map((name) => {
    const near = closestEventName(name, known);
    return `"${name}" (${countOf(eventNames.get(name) ?? 0, 'row')}${near ? `; did you mean "${near}"?` : ''})`;
  });
  console.error(
    `warning: ${unused.length} of the ${eventNames.size} event names imported ${unused.length === 1 ? 'is' : 'are'} used by no flow, segment or computed field ` +
      `(${note}): ${described.join(', ')}${more}.\n` +
      advice.map((line) => `  If that is not on purpose, ${line}.`).join('\n'),
  );
}

/** How to fix the names nothing reads: a misspelled target of the event map, or the shop's own names to map. */
function renamingAdvice(mapping: ImportMapping, unused: readonly string[], mapFile: string): string[] {
  const event = mapping.event;
  const targets = new Set(event?.from === 'column' && event.valueMap ? [...event.valueMap.values.values()].map(String) : []);
  const misspelled = unused.filter((name) => targets.has(name));
  const unmapped = unused.filter((name) => !targets.has(name));
  const advice: string[] = [];
  if (misspelled.length > 0) {
    const names = misspelled.map((n) => `"${n}"`).join(', ');
    advice.push(`${names} ${misspelled.length === 1 ? 'is a name' : 'are names'} the map of "event" in ${mapFile} writes: correct the spelling there`);
  }
  if (unmapped.length > 0 && event?.from === 'column') {
    const pairs = `${unmapped.slice(0, 3).map((n) => `${n}: ...`).join(', ')}${unmapped.length > 3 ? ', ...' : ''}`;
    advice.push(`map the shop's own names to the Segment e-commerce names (Product Viewed, Product Added, Product Removed, Order Completed, ...) in ${mapFile}: event: { column: ${event.column}, map: { ${pairs} } }`);
  } else if (unmapped.length > 0) {
    advice.push(`set the name in ${mapFile}: event: { value: <a name flows and segments use, e.g. Order Completed> }`);
  }
  return advice;
}
