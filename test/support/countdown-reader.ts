// Reads the text a countdown image shows back from its pixels, the way a person would: find the pixels of one colour,
// split them into lines (runs of rows) and glyphs (runs of columns), infer each glyph's scale from its height, sample
// it cell by cell and look the cells up in core/countdown's font table. Shares no layout code with the drawing, so a
// box drawn in the wrong place, size or colour reads wrong. Also decodes GIFs with omggif into composed RGBA frames.
import { GifReader } from 'omggif';
import { COUNTDOWN_FONT, GLYPH_COLUMNS, GLYPH_ROWS, type Rgb } from '../../core/countdown';

export const DIGITS = '0123456789';
export const CAPITALS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** An RGBA image. */
export interface Rgba {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** An indexed frame (palette indexes) as RGBA. */
export function indexedToRgba(indexes: Uint8Array, width: number, height: number, palette: Rgb[]): Rgba {
  const pixels = new Uint8Array(width * height * 4);
  indexes.forEach((index, i) => {
    const [r, g, b] = palette[index] ?? [255, 0, 255];
    pixels.set([r, g, b, 255], i * 4);
  });
  return { width, height, pixels };
}

/** The glyph's drawn columns only (blank columns at either side cut off), as rows of '#' and '.'. */
function trimmed(rows: readonly string[]): string {
  const used = [...Array(GLYPH_COLUMNS).keys()].filter((c) => rows.some((row) => row[c] === '#'));
  if (used.length === 0) return '';
  const from = used[0]!;
  const to = used[used.length - 1]!;
  return rows.map((row) => row.slice(from, to + 1)).join('/');
}

/**
 * The lines of text drawn in `colour`, top to bottom; a gap wider than three font cells between glyphs reads as a
 * space, and a glyph that matches none of `alphabet` reads as '?'.
 */
export function readLines(image: Rgba, colour: Rgb, alphabet: string): string[] {
  const { width, height, pixels } = image;
  const on = (x: number, y: number) => {
    const i = (y * width + x) * 4;
    return pixels[i] === colour[0] && pixels[i + 1] === colour[1] && pixels[i + 2] === colour[2];
  };
  const shapes = new Map<string, string>();
  for (const char of alphabet) {
    const glyph = COUNTDOWN_FONT[char];
    if (glyph) shapes.set(trimmed(glyph), char);
  }
  const rowHas = (y: number) => {
    for (let x = 0; x < width; x++) if (on(x, y)) return true;
    return false;
  };
  const lines: string[] = [];
  for (let y = 0; y < height; ) {
    if (!rowHas(y)) {
      y++;
      continue;
    }
    const top = y;
    while (y < height && rowHas(y)) y++;
    const bottom = y; // exclusive
    const columnHas = (x: number) => {
      for (let row = top; row < bottom; row++) if (on(x, row)) return true;
      return false;
    };
    let text = '';
    let previousEnd: number | null = null;
    let previousScale = 1;
    for (let x = 0; x < width; ) {
      if (!columnHas(x)) {
        x++;
        continue;
      }
      const left = x;
      while (x < width && columnHas(x)) x++;
      const right = x; // exclusive
      // The glyph's own rows: glyphs of different sizes may share a line.
      let glyphTop = bottom;
      let glyphBottom = top;
      for (let row = top; row < bottom; row++) {
        for (let col = left; col < right; col++) {
          if (on(col, row)) {
            glyphTop = Math.min(glyphTop, row);
            glyphBottom = Math.max(glyphBottom, row + 1);
          }
        }
      }
      // A glyph as tall as the font is read at its own scale (glyphs of different sizes may share a line); a shorter
      // one (':') at the line's.
      const candidates = [
        { scale: (glyphBottom - glyphTop) / GLYPH_ROWS, from: glyphTop },
        { scale: (bottom - top) / GLYPH_ROWS, from: top },
      ].filter((c) => Number.isInteger(c.scale) && c.scale > 0 && Number.isInteger((right - left) / c.scale));
      const scale = candidates[0]?.scale ?? (glyphBottom - glyphTop) / GLYPH_ROWS;
      if (previousEnd !== null && left - previousEnd > 3 * Math.max(scale, previousScale)) text += ' ';
      let char = '?';
      for (const candidate of candidates) {
        const cells: string[] = [];
        for (let r = 0; r < GLYPH_ROWS; r++) {
          let row = '';
          for (let c = 0; c < (right - left) / candidate.scale; c++) {
            row += on(left + c * candidate.scale + Math.floor(candidate.scale / 2), candidate.from + r * candidate.scale + Math.floor(candidate.scale / 2)) ? '#' : '.';
          }
          cells.push(row);
        }
        const found = shapes.get(cells.join('/'));
        if (found !== undefined) {
          char = found;
          break;
        }
      }
      text += char;
      previousEnd = right;
      previousScale = Number.isInteger(scale) ? scale : previousScale;
    }
    lines.push(text);
  }
  return lines;
}

/** A decoded GIF: its frames composed as a viewer shows them (each drawn over the last), with their delays. */
export interface DecodedGif {
  width: number;
  height: number;
  /** NETSCAPE2.0 loop count: 0 loops forever; null plays once. */
  loopCount: number | null;
  frames: Array<{ image: Rgba; delayCs: number; transparent: boolean; disposal: number }>;
}

export function decodeGif(bytes: Uint8Array): DecodedGif {
  const reader = new GifReader(bytes);
  const canvas = new Uint8Array(reader.width * reader.height * 4);
  const frames: DecodedGif['frames'] = [];
  for (let i = 0; i < reader.numFrames(); i++) {
    const info = reader.frameInfo(i);
    reader.decodeAndBlitFrameRGBA(i, canvas);
    // Disposal 0 and 1 leave the frame in place for the next: the only ones the countdown writes (tests assert it).
    frames.push({ image: { width: reader.width, height: reader.height, pixels: canvas.slice() }, delayCs: info.delay, transparent: info.transparent_index !== null, disposal: info.disposal });
  }
  return { width: reader.width, height: reader.height, loopCount: reader.loopCount(), frames };
}
