// The countdown image as a GIF (encoded with gifenc), and the frame cache that makes an open cheap. An open at second
// s of a minute gets 60 one-second frames starting at s: one whole frame, then 59 frames that hold only the pixels that
// changed (the rest transparent, drawn over what is shown), which makes the file about a fifth of 60 whole frames. The
// encoded frames are kept per (deadline, minute, style), so a repeated open costs a concatenation. Past the deadline
// the image is one static "offer ended" frame. Pure: the caller passes the clock.
import { GIFEncoder, type GIFEncoderInstance } from 'gifenc';
import { COUNTDOWN_HEIGHT, COUNTDOWN_WIDTH, countdownPalette, drawCountdownFrame, drawEndedFrame, timeLeft, type CountdownStyle, type Rgb } from './countdown';

/** One second per frame. */
const FRAME_MS = 1000;
const FRAMES_PER_MINUTE = 60;
/** The palette index of "unchanged since the last frame": a fifth entry after the four colours. */
const UNCHANGED = 4;
/** 5 palette entries need 3 bits per pixel. */
const COLOUR_DEPTH = 3;
/** GIF disposal "do not dispose": the next frame is drawn over this one, so its transparent pixels show this one. */
const KEEP = 1;
/** The GIF trailer byte. */
const TRAILER = 0x3b;

/** What the cache has done, for tests and benchmarks. */
export interface CountdownGifStats {
  /** Frames drawn into a pixel buffer. */
  framesDrawn: number;
  /** Frames encoded by gifenc (whole or changes-only). */
  framesEncoded: number;
  /** Opens served from minutes already in the cache, and opens that built at least one minute. */
  warmOpens: number;
  coldOpens: number;
}

/** One style's palette and the bytes that start its GIFs. */
interface StyleAssets {
  key: string;
  palette: Rgb[];
  /** Header, screen descriptor, global palette and NETSCAPE2.0 "loop forever" extension. */
  loopingPreamble: Uint8Array;
  /** The same without the loop extension: the animation plays once and rests on its last frame. */
  oncePreamble: Uint8Array;
  ended: Uint8Array | null;
}

/** The encoded frames of one minute of one deadline: frame k shows the time left at the minute's start + k seconds. */
interface MinuteFrames {
  /** Changes from the previous second's frame, transparent elsewhere; built for the whole minute at once. */
  changes: Uint8Array[];
  /** Whole frames, each built the first time an open starts on its second. */
  whole: Array<Uint8Array | undefined>;
}

export interface CountdownGifOptions {
  /** How many (deadline, minute, style) entries are kept; the least recently used goes first. Default 200. */
  maxMinutes?: number;
}

/** Draws, encodes and caches countdown GIFs. One per server: the cache is its state. */
export class CountdownGifs {
  readonly stats: CountdownGifStats = { framesDrawn: 0, framesEncoded: 0, warmOpens: 0, coldOpens: 0 };
  private readonly maxMinutes: number;
  private readonly minutes = new Map<string, MinuteFrames>();
  private readonly styles = new Map<string, StyleAssets>();
  /** One encoder for every frame: its hash tables are reused, its output copied out after each frame. */
  private readonly encoder: GIFEncoderInstance = GIFEncoder({ auto: false, initialCapacity: 16_384 });

  constructor(options: CountdownGifOptions = {}) {
    this.maxMinutes = Math.max(2, options.maxMinutes ?? 200);
  }

  /** How many minutes are cached. */
  get cachedMinutes(): number {
    return this.minutes.size;
  }

  /**
   * The GIF an open at `now` gets for `untilMs`: 60 one-second frames from `now`'s second that loop, or fewer ending
   * on 00:00:00:00 when the deadline falls inside them (played once, resting on the zeros), or the static "offer
   * ended" frame once it has passed.
   */
  gif(untilMs: number, now: number, style: CountdownStyle): Uint8Array {
    const assets = this.assets(style);
    if (timeLeft(now, untilMs).ended) return this.ended(assets);
    const second = Math.floor(now / FRAME_MS) * FRAME_MS;
    const remaining = Math.floor((untilMs - second) / FRAME_MS);
    const count = Math.min(FRAMES_PER_MINUTE, remaining + 1);
    const minute = Math.floor(second / (FRAMES_PER_MINUTE * FRAME_MS));
    const first = (second - minute * FRAMES_PER_MINUTE * FRAME_MS) / FRAME_MS;
    const reachesZero = remaining < FRAMES_PER_MINUTE;
    // This minute's frames, and the next minute's when the 60 seconds run into it.
    const spans = first + count > FRAMES_PER_MINUTE ? [minute, minute + 1] : [minute];
    let cold = false;
    const minutes = spans.map((at) => {
      const key = `${untilMs}|${at}|${assets.key}`;
      let frames = this.minutes.get(key);
      if (frames) {
        // Least recently used goes first: a hit moves to the end.
        this.minutes.delete(key);
      } else {
        cold = true;
        frames = this.buildMinute(untilMs, at);
        while (this.minutes.size >= this.maxMinutes) this.minutes.delete(this.minutes.keys().next().value!);
      }
      this.minutes.set(key, frames);
      return frames;
    });
    const parts: Uint8Array[] = [reachesZero ? assets.oncePreamble : assets.loopingPreamble];
    const opening = minutes[0]!;
    let whole = opening.whole[first];
    if (!whole) opening.whole[first] = whole = this.encode(this.draw(untilMs, second), false);
    parts.push(whole);
    for (let k = first + 1; k < first + count; k++) parts.push(minutes[Math.floor(k / FRAMES_PER_MINUTE)]!.changes[k % FRAMES_PER_MINUTE]!);
    parts.push(Uint8Array.of(TRAILER));
    if (cold) this.stats.coldOpens++;
    else this.stats.warmOpens++;
    return concat(parts);
  }

  private draw(untilMs: number, at: number): Uint8Array {
    this.stats.framesDrawn++;
    return drawCountdownFrame(timeLeft(at, untilMs));
  }

  private buildMinute(untilMs: number, minute: number): MinuteFrames {
    const start = minute * FRAMES_PER_MINUTE * FRAME_MS;
    const changes: Uint8Array[] = [];
    let previous = this.draw(untilMs, start - FRAME_MS);
    for (let k = 0; k < FRAMES_PER_MINUTE; k++) {
      const current = this.draw(untilMs, start + k * FRAME_MS);
      const delta = new Uint8Array(current.length);
      for (let i = 0; i < current.length; i++) delta[i] = current[i] === previous[i] ? UNCHANGED : current[i]!;
      changes.push(this.encode(delta, true));
      previous = current;
    }
    return { changes, whole: new Array<Uint8Array | undefined>(FRAMES_PER_MINUTE) };
  }

  /** One frame's bytes: graphic control extension, image descriptor (global palette) and pixels. */
  private encode(pixels: Uint8Array, changesOnly: boolean): Uint8Array {
    this.stats.framesEncoded++;
    this.encoder.reset();
    this.encoder.writeFrame(pixels, COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT, {
      delay: FRAME_MS,
      colorDepth: COLOUR_DEPTH,
      dispose: KEEP,
      ...(changesOnly ? { transparent: true, transparentIndex: UNCHANGED } : {}),
    });
    return this.encoder.bytes();
  }

  private ended(assets: StyleAssets): Uint8Array {
    if (!assets.ended) {
      this.stats.framesDrawn++;
      this.stats.framesEncoded++;
      const encoder = GIFEncoder();
      encoder.writeFrame(drawEndedFrame(), COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT, { palette: assets.palette, colorDepth: COLOUR_DEPTH, repeat: -1 });
      encoder.finish();
      assets.ended = encoder.bytes();
    }
    return assets.ended;
  }

  private assets(style: CountdownStyle): StyleAssets {
    const key = `${style.background}|${style.text}|${style.muted}`;
    let assets = this.styles.get(key);
    if (!assets) {
      // The unchanged-pixel entry is never shown (it is transparent); black fills its slot.
      const palette: Rgb[] = [...countdownPalette(style), [0, 0, 0]];
      if (this.styles.size >= 64) this.styles.clear();
      this.styles.set(key, (assets = { key, palette, loopingPreamble: preamble(palette, 0), oncePreamble: preamble(palette, -1), ended: null }));
    }
    return assets;
  }
}

/**
 * The bytes gifenc writes before a first frame (header, screen descriptor, global palette, loop extension when
 * `repeat` is not -1): a first frame written with them, less the same frame written without.
 */
function preamble(palette: Rgb[], repeat: number): Uint8Array {
  const blank = new Uint8Array(COUNTDOWN_WIDTH * COUNTDOWN_HEIGHT);
  const withPreamble = GIFEncoder({ auto: false });
  withPreamble.writeHeader();
  withPreamble.writeFrame(blank, COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT, { first: true, palette, repeat, colorDepth: COLOUR_DEPTH, delay: FRAME_MS, dispose: KEEP });
  const frameOnly = GIFEncoder({ auto: false });
  frameOnly.writeFrame(blank, COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT, { colorDepth: COLOUR_DEPTH, delay: FRAME_MS, dispose: KEEP });
  const whole = withPreamble.bytes();
  const frame = frameOnly.bytes();
  const start = whole.length - frame.length;
  if (start <= 0 || !frame.every((byte, i) => whole[start + i] === byte)) throw new Error('gifenc wrote a first frame that does not end with the frame alone: its output format changed');
  return whole.slice(0, start);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
