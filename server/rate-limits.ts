// Rate limits and "count once" windows on rate-limiter-flexible: in memory for one server today, and the same
// interface over Redis or PostgreSQL (RateLimiterRedis, RateLimiterPostgres) when several servers share the limits.
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimitedError } from '../core/errors';

export interface Limiter {
  /** Takes `points` for `key`; throws RateLimitedError (429 with Retry-After) when `key` has used its allowance. */
  take(key: string, points: number, what: string): Promise<void>;
}

/** `points` per `durationSeconds` per key. */
export function limiter(points: number, durationSeconds: number): Limiter {
  const backend: RateLimiterAbstract = new RateLimiterMemory({ points, duration: durationSeconds });
  return {
    async take(key, used, what) {
      try {
        await backend.consume(key, used);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const retryAfterSeconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        throw new RateLimitedError(`${what}: more than ${points} per ${durationSeconds} s; retry after ${retryAfterSeconds} s`, retryAfterSeconds);
      }
    },
  };
}

/** Whether `key` is seen for the first time in `windowSeconds` (a repeated open or click of one token counts once). */
export function firstIn(windowSeconds: number): (key: string) => Promise<boolean> {
  const backend = new RateLimiterMemory({ points: 1, duration: windowSeconds });
  return async (key) => {
    try {
      await backend.consume(key, 1);
      return true;
    } catch (err) {
      if (err instanceof RateLimiterRes) return false;
      throw err;
    }
  };
}
