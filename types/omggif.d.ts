// Types for omggif 1.0 (a GIF decoder and encoder that ships none): the decoder the countdown tests read GIFs with.
declare module 'omggif' {
  export interface GifFrameInfo {
    x: number;
    y: number;
    width: number;
    height: number;
    has_local_palette: boolean;
    palette_offset: number | null;
    palette_size: number | null;
    data_offset: number;
    data_length: number;
    transparent_index: number | null;
    interlaced: boolean;
    /** Hundredths of a second. */
    delay: number;
    disposal: number;
  }

  export class GifReader {
    constructor(buffer: Uint8Array);
    readonly width: number;
    readonly height: number;
    numFrames(): number;
    /** The NETSCAPE2.0 loop count: 0 loops forever; null: no loop extension (plays once). */
    loopCount(): number | null;
    frameInfo(frameIndex: number): GifFrameInfo;
    /** Draws the frame over `pixels` (width × height × 4, RGBA); transparent pixels leave what was there. */
    decodeAndBlitFrameRGBA(frameIndex: number, pixels: Uint8Array | Uint8ClampedArray): void;
    decodeAndBlitFrameBGRA(frameIndex: number, pixels: Uint8Array | Uint8ClampedArray): void;
  }

  export class GifWriter {
    constructor(buffer: Uint8Array, width: number, height: number, options?: { loop?: number; palette?: number[]; background?: number });
  }
}
