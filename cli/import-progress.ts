// Shows how far an import is on stderr: a bar redrawn ~10x/s on a terminal, one plain line every few seconds otherwise.

export interface ImportCounts {
  /** Data rows read so far, including rows skipped on resume. */
  rows: number;
  /** Rows this run has processed (not skipped): the basis of the rate. */
  processed: number;
  bad: number;
  bytes: number;
}

export interface ProgressOptions {
  out: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  /** File size in bytes: bytes read / size is the fraction done, and rows / fraction the estimated total. */
  size: number;
  now?: () => number;
  /** Between plain lines when the output is not a terminal. */
  plainEveryMs?: number;
}

const group = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The figures a progress line shows; pure, so the format is testable. */
export function progressFigures(counts: ImportCounts, size: number, elapsedMs: number): { fraction: number | null; totalRows: number | null; rate: number; etaMs: number | null } {
  const fraction = size > 0 && counts.bytes > 0 ? Math.min(1, counts.bytes / size) : null;
  // Rows are parsed a chunk at a time, so bytes lead rows a little; the estimate settles as the file goes on.
  const totalRows = fraction && counts.rows > 0 ? Math.max(counts.rows, Math.round(counts.rows / fraction)) : null;
  const rate = elapsedMs > 0 ? (counts.processed * 1000) / elapsedMs : 0;
  const etaMs = totalRows !== null && rate > 0 ? ((totalRows - counts.rows) / rate) * 1000 : null;
  return { fraction, totalRows, rate, etaMs };
}

export class ImportProgress {
  private readonly now: () => number;
  private readonly started: number;
  private timer: NodeJS.Timeout | null = null;
  private drawn = false;
  private counts: ImportCounts = { rows: 0, processed: 0, bad: 0, bytes: 0 };

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? Date.now;
    this.started = this.now();
  }

  get tty(): boolean {
    return this.options.out.isTTY === true;
  }

  start(read: () => ImportCounts): void {
    const every = this.tty ? 100 : (this.options.plainEveryMs ?? 5000);
    this.timer = setInterval(() => {
      this.counts = read();
      this.draw();
    }, every);
    // The import ends when its rows are done, not when the progress timer says so.
    this.timer.unref();
  }

  /** Clears the bar so the lines after it start on a clean line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.tty && this.drawn) this.options.out.write('\r\x1b[K');
    this.drawn = false;
  }

  elapsedMs(): number {
    return this.now() - this.started;
  }

  private draw(): void {
    const { fraction, totalRows, rate, etaMs } = progressFigures(this.counts, this.options.size, this.elapsedMs());
    const percent = fraction === null ? '' : `${Math.floor(fraction * 100)}%`;
    const rows = `${group(this.counts.rows)}${totalRows !== null && fraction !== null && fraction < 1 ? `/~${group(totalRows)}` : ''} rows`;
    const bad = `${group(this.counts.bad)} bad`;
    if (!this.tty) {
      this.options.out.write(`import: ${rows}${percent ? ` (${percent})` : ''}, ${group(rate)} rows/s, ${bad}, ${formatDuration(this.elapsedMs())}\n`);
      return;
    }
    const width = 24;
    const filled = fraction === null ? 0 : Math.round(fraction * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const eta = etaMs === null ? '' : `  ETA ${formatDuration(etaMs)}`;
    const line = `${bar} ${percent.padStart(4)}  ${rows}  ${group(rate)} rows/s  ${bad}${eta}`;
    const columns = this.options.out.columns || 80; // 0 on a terminal that reports no size
    this.options.out.write(`\r\x1b[K${line.slice(0, Math.max(10, columns - 1))}`);
    this.drawn = true;
  }
}
