// Who gets which variant, and who is held out: deterministic per (experiment, customer) and per (flow, customer), from
// a SHA-256 of the ids, so every worker, every re-entry and every flow version agree without asking anyone, and a new
// experiment id reshuffles everyone. Pure: no I/O, no clock.
import { createHash } from 'node:crypto';

/** The variant name reports use for a flow's holdout; variant names in files cannot contain parentheses. */
export const HOLDOUT_VARIANT = '(holdout)';

/** A number in [0, 1) from `key`, uniform over keys: the first 52 bits of its SHA-256. */
export function assignmentBucket(key: string): number {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  // 52 bits fit a double exactly: 20 from the first 4 bytes' top, 32 from the next 4.
  const high = digest.readUInt32BE(0) >>> 12;
  const low = digest.readUInt32BE(4);
  return (high * 2 ** 32 + low) / 2 ** 52;
}

/**
 * The customer's variant: the bucket of (experiment, customer) laid over the variants' weights in file order. Weights
 * need not sum to 100 here (the compiler checks that); zero total picks the first.
 */
export function chooseVariant(experimentId: string, customerId: string, variants: ReadonlyArray<{ name: string; weight: number }>): { variant: string; bucket: number } {
  if (variants.length === 0) throw new RangeError(`experiment ${experimentId} has no variants`);
  const bucket = assignmentBucket(`experiment\u0000${experimentId}\u0000${customerId}`);
  const total = variants.reduce((sum, v) => sum + Math.max(0, v.weight), 0);
  if (!(total > 0)) return { variant: variants[0]!.name, bucket };
  let edge = 0;
  for (const v of variants) {
    edge += Math.max(0, v.weight) / total;
    if (bucket < edge) return { variant: v.name, bucket };
  }
  return { variant: variants[variants.length - 1]!.name, bucket };
}

/** Whether the customer is in the flow's holdout (`holdout: 10%` → share 0.1). The same for every version of the flow. */
export function inHoldout(flowId: string, customerId: string, share: number | undefined): boolean {
  if (share === undefined || !(share > 0)) return false;
  return assignmentBucket(`holdout\u0000${flowId}\u0000${customerId}`) < share;
}
