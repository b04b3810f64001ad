// Streams the rows of a CSV or JSONL file with their row and line numbers; a row that cannot be read is returned
// with the reason instead of stopping the file, so one stray quote costs one row, not the rest of the file.
import fs from 'node:fs';
import readline from 'node:readline';
import { parse as parseCsv } from 'csv-parse/sync';

export type SourceFormat = 'csv' | 'jsonl';

export interface SourceRow {
  /** 1-based data row number: the header and blank lines do not count. */
  row: number;
  /** 1-based line in the file where the row starts. */
  line: number;
  /** The row as column -> value; absent when the row could not be read. */
  record?: Record<string, unknown>;
  /** Why the row could not be read (malformed CSV, invalid JSON). */
  problem?: string;
  /** The row's text as in the file. */
  raw: string;
}

export interface RowSource {
  format: SourceFormat;
  /** CSV: the column names of the header line; JSONL: null. */
  header: string[] | null;
  /** The line the header is on (CSV), for messages. */
  headerLine: number | null;
  rows: AsyncGenerator<SourceRow>;
  /** Bytes of the file read into rows so far: against its size, how far the import is. */
  bytesRead(): number;
  close(): void;
}

export function formatOf(file: string): SourceFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return undefined;
}

/** A quoted field may span lines; beyond this many the quote is taken as a stray one and the row as malformed. */
export const MAX_LINES_PER_RECORD = 1000;

export interface CsvRecord {
  line: number;
  text: string;
  fields?: string[];
  problem?: string;
}

/** Where a line scan is within a record. QuoteInQuoted: a quote inside a quoted field, its end or half of an escaped "". */
const Scan = { FieldStart: 0, Unquoted: 1, Quoted: 2, QuoteInQuoted: 3 } as const;
type Scan = (typeof Scan)[keyof typeof Scan];

/**
 * Groups physical lines into CSV records; csv-parse parses them (see parseRecords). A record ends at a line end outside
 * a quoted field. csv-parse streaming cannot go on after a malformed quote: even with skip_records_with_error it
 * resumes mid-record and swallows the rows after it. So when a multi-line record fails to parse, or its quote never
 * closes, its first line is reported as the bad row and the lines after it are read again as records of their own.
 */
export class CsvRecordSplitter {
  private pending: Array<{ text: string; line: number }> = [];
  private state: Scan = Scan.FieldStart;

  /** Feeds one line (without its line break); returns the records it completes. */
  push(text: string, line: number): CsvRecord[] {
    const out: CsvRecord[] = [];
    this.feed(text, line, out);
    return out;
  }

  /** The end of the file: a record still open has a quote that never closed. */
  end(): CsvRecord[] {
    const out: CsvRecord[] = [];
    while (this.pending.length > 0) this.giveUpOnFirstLine('malformed CSV: a quoted value is not closed before the end of the file', out);
    return out;
  }

  private feed(text: string, line: number, out: CsvRecord[]): void {
    if (this.pending.length === 0) {
      if (text.trim() === '') return; // blank lines between records are not rows
      if (!text.includes('"')) {
        // Exactly what csv-parse returns for a line without quotes, at a fraction of the cost.
        out.push({ line, text, fields: text.split(',') });
        return;
      }
      this.state = Scan.FieldStart;
    }
    this.pending.push({ text, line });
    this.state = scanLine(text, this.state);
    if (this.state === Scan.Quoted) {
      if (this.pending.length >= MAX_LINES_PER_RECORD) this.giveUpOnFirstLine(`malformed CSV: a quoted value is not closed within ${MAX_LINES_PER_RECORD} lines`, out);
      return;
    }
    const lines = this.pending;
    this.pending = [];
    // One line: parsed later with its neighbours (parseRecords). Several: parsed now, since failing means resyncing.
    if (lines.length === 1) {
      out.push({ line, text });
      return;
    }
    const record = parseRecord(lines.map((l) => l.text).join('\n'), lines[0]!.line);
    if (record.problem === undefined) {
      out.push(record);
      return;
    }
    this.pending = lines;
    this.giveUpOnFirstLine(`${record.problem} (the row is read as spanning lines ${lines[0]!.line}-${lines[lines.length - 1]!.line} because of a quote)`, out);
  }

  /** Reports the first pending line as a bad row and reads the lines after it again, from a fresh record. */
  private giveUpOnFirstLine(problem: string, out: CsvRecord[]): void {
    const [first, ...rest] = this.pending;
    this.pending = [];
    this.state = Scan.FieldStart;
    out.push({ line: first!.line, text: first!.text, problem });
    for (const next of rest) this.feed(next.text, next.line, out);
  }
}

function scanLine(text: string, start: Scan): Scan {
  let state: Scan = start;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    switch (state) {
      case Scan.FieldStart:
        state = c === 0x22 ? Scan.Quoted : c === 0x2c ? Scan.FieldStart : Scan.Unquoted;
        break;
      case Scan.Unquoted:
        if (c === 0x2c) state = Scan.FieldStart;
        break;
      case Scan.Quoted:
        if (c === 0x22) state = Scan.QuoteInQuoted;
        break;
      case Scan.QuoteInQuoted:
        state = c === 0x22 ? Scan.Quoted : c === 0x2c ? Scan.FieldStart : Scan.Unquoted;
        break;
    }
  }
  // A line break inside a quoted field belongs to the field; anywhere else it ends the record.
  return state === Scan.Quoted ? Scan.Quoted : Scan.FieldStart;
}

function parseRecord(text: string, line: number): CsvRecord {
  try {
    const rows = parseCsv(text, { relax_column_count: true }) as string[][];
    return { line, text, fields: rows[0] ?? [''] };
  } catch (err) {
    return { line, text, problem: `malformed CSV: ${csvProblem(err)}` };
  }
}

/**
 * Parses the records the splitter left unparsed (single lines with quotes) with one csv-parse call: per-record calls
 * cost ~30µs each, most of an import's reading time. The splitter has already found each record's end, so a clean
 * parse of the joined lines yields one row per line; if the chunk fails anywhere, its lines are parsed one by one.
 */
export function parseRecords(records: CsvRecord[]): void {
  const todo = records.filter((r) => r.fields === undefined && r.problem === undefined);
  if (todo.length === 0) return;
  try {
    const rows = parseCsv(todo.map((r) => r.text).join('\n'), { relax_column_count: true }) as string[][];
    if (rows.length === todo.length) {
      todo.forEach((record, i) => {
        record.fields = rows[i];
      });
      return;
    }
  } catch {
    // One bad row in the chunk: find it (and the reason) row by row.
  }
  for (const record of todo) Object.assign(record, parseRecord(record.text, record.line));
}

/** csv-parse's message in words that say what to fix; its line numbers count within the row, so they are dropped. */
function csvProblem(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'CSV_INVALID_CLOSING_QUOTE') return 'a quoted value goes on after its closing quote: a quote inside a quoted value is written twice ("")';
  if (code === 'INVALID_OPENING_QUOTE') return 'a quote inside an unquoted value: put the value in quotes and write each quote in it twice ("a ""b"" c")';
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/ at line \d+/, '');
}

interface LineReader {
  next(): Promise<IteratorResult<string>>;
  /** Bytes of the lines returned so far (a line break counted as one byte): how far the rows have got, unlike the
   *  stream's bytesRead, which runs ahead by whatever readline has buffered. */
  bytes(): number;
  close(): void;
}

function lineReader(file: string): LineReader {
  const stream = fs.createReadStream(file);
  // crlfDelay: a \r\n split across two chunks is still one line break.
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  const lines = rl[Symbol.asyncIterator]();
  let bytes = 0;
  return {
    async next() {
      const next = await lines.next();
      if (!next.done) bytes += Buffer.byteLength(next.value) + 1;
      return next;
    },
    bytes: () => bytes,
    close() {
      rl.close();
      stream.destroy();
    },
  };
}

const stripBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** Opens the file; for CSV, reads the header before returning so the caller can check it before writing anything. */
export async function openRowSource(file: string, format: SourceFormat): Promise<RowSource> {
  const reader = lineReader(file);
  const bytesRead = () => reader.bytes();
  if (format === 'jsonl') return { format, header: null, headerLine: null, rows: jsonlRows(reader), bytesRead, close: reader.close };

  const splitter = new CsvRecordSplitter();
  let lineNo = 0;
  let header: CsvRecord | undefined;
  const queue: CsvRecord[] = [];
  while (!header) {
    const next = await reader.next();
    if (next.done) {
      queue.push(...splitter.end());
      header = queue.shift();
      break;
    }
    lineNo += 1;
    queue.push(...splitter.push(lineNo === 1 ? stripBom(next.value) : next.value, lineNo));
    header = queue.shift();
  }
  if (header) parseRecords([header]);
  if (header?.problem !== undefined) {
    reader.close();
    throw new Error(`${file}:${header.line}: the header line is not valid CSV: ${header.problem}`);
  }
  const columns = header?.fields ?? [];
  return {
    format,
    header: columns,
    headerLine: header?.line ?? null,
    rows: csvRows(reader, splitter, queue, lineNo, columns),
    bytesRead,
    close: reader.close,
  };
}

async function* csvRows(lines: LineReader, splitter: CsvRecordSplitter, queue: CsvRecord[], lineNo: number, header: string[]): AsyncGenerator<SourceRow> {
  let row = 0;
  const toRow = (record: CsvRecord): SourceRow => {
    row += 1;
    if (record.problem !== undefined) return { row, line: record.line, raw: record.text, problem: record.problem };
    const fields = record.fields!;
    if (fields.length !== header.length) {
      const hint = fields.length > header.length ? ': a comma inside a value needs the value in double quotes' : '';
      return { row, line: record.line, raw: record.text, problem: `malformed CSV: the row has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${header.length}${hint}` };
    }
    const values: Record<string, unknown> = {};
    header.forEach((name, i) => {
      values[name] = fields[i];
    });
    return { row, line: record.line, raw: record.text, record: values };
  };
  let chunk = queue;
  for (;;) {
    const next = await lines.next();
    if (next.done) break;
    lineNo += 1;
    chunk.push(...splitter.push(next.value, lineNo));
    if (chunk.length < CHUNK_RECORDS) continue;
    parseRecords(chunk);
    for (const record of chunk) yield toRow(record);
    chunk = [];
  }
  chunk.push(...splitter.end());
  parseRecords(chunk);
  for (const record of chunk) yield toRow(record);
}

/** Records parsed per csv-parse call. */
const CHUNK_RECORDS = 256;

async function* jsonlRows(lines: LineReader): AsyncGenerator<SourceRow> {
  let row = 0;
  let line = 0;
  for (;;) {
    const next = await lines.next();
    if (next.done) break;
    line += 1;
    const text = line === 1 ? stripBom(next.value) : next.value;
    if (text.trim() === '') continue;
    row += 1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield { row, line, raw: text, problem: `not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      yield { row, line, raw: text, problem: `the line is ${what}, not a JSON object` };
      continue;
    }
    yield { row, line, raw: text, record: value as Record<string, unknown> };
  }
}
