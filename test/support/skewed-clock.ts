// A `--require` shim for child processes that must run with a wrong clock: replaces the global Date with one whose
// current time (Date.now() and `new Date()`) is SKEW_MS ahead; dates built from explicit values are unchanged.
const RealDate = Date;
const skewMs = Number(process.env.SKEW_MS ?? '0');
if (!Number.isFinite(skewMs)) throw new Error(`SKEW_MS=${process.env.SKEW_MS} is not a number of milliseconds`);

class SkewedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() + skewMs);
    else super(...(args as ConstructorParameters<DateConstructor>));
  }

  static override now(): number {
    return RealDate.now() + skewMs;
  }
}

globalThis.Date = SkewedDate as DateConstructor;

// A module, so the names above stay out of the project's global scope.
export {};
