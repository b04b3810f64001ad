// Types for gifenc 1.0 (a pure-JS GIF encoder that ships none): the encoder API core/countdown-gif uses, as its
// README and src/index.js define it.
declare module 'gifenc' {
  /** A colour table: [r, g, b] (or [r, g, b, a]) entries, 0–255. */
  export type Palette = number[][];

  export interface WriteFrameOptions {
    /** The colour table: required for the first frame (it becomes the global table); later frames' are local tables. */
    palette?: Palette;
    /** In `auto: false` mode: this frame writes the logical screen descriptor, global table and loop extension. */
    first?: boolean;
    transparent?: boolean;
    transparentIndex?: number;
    /** Milliseconds; written in hundredths of a second. */
    delay?: number;
    /** -1: play once (no loop extension), 0: loop forever, n: loop n more times. */
    repeat?: number;
    /** Bits per palette index (1–8): the LZW minimum code size and the screen descriptor's colour resolution. */
    colorDepth?: number;
    /** The GIF disposal method (0–7); -1: the encoder's default. */
    dispose?: number;
  }

  export interface GIFEncoderInstance {
    /** "GIF89a"; only needed in `auto: false` mode. */
    writeHeader(): void;
    writeFrame(index: Uint8Array, width: number, height: number, options?: WriteFrameOptions): void;
    /** The trailer byte that ends the file. */
    finish(): void;
    /** A copy of the bytes written so far. */
    bytes(): Uint8Array;
    /** A view of the bytes written so far (no copy; invalid after the next write). */
    bytesView(): Uint8Array;
    /** Rewinds the stream: the next writes replace what was there. */
    reset(): void;
    readonly buffer: ArrayBuffer;
  }

  export interface GIFEncoderOptions {
    /** true: the first writeFrame writes the header, screen descriptor and global table itself. */
    auto?: boolean;
    initialCapacity?: number;
  }

  export function GIFEncoder(options?: GIFEncoderOptions): GIFEncoderInstance;
  export default GIFEncoder;
}
