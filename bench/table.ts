// Prints benchmark results as Markdown tables, so a run's output can be pasted into bench/README.md as is.

export function printTable(columns: string[], rows: string[][], leftAligned: number[]): void {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const left = (i: number) => leftAligned.includes(i);
  const line = (cells: string[]) => `| ${cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(columns));
  console.log(`|${widths.map((w, i) => (left(i) ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}
