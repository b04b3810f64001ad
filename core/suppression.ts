// The suppression list's rules (issue 14): which addresses get no email of any kind (hard bounce), no marketing
// (spam complaint, unsubscribe), or none for a while (repeated soft bounces). Pure: the store keeps the entries.
import crypto from 'node:crypto';

/** What put an address on the list. */
export type SuppressionReason = 'hard_bounce' | 'complaint' | 'soft_bounce' | 'unsubscribe' | 'manual' | 'import' | 'erased';

/** all: no email of any kind; marketing: transactional email still goes. */
export type SuppressionScope = 'all' | 'marketing';

export interface SuppressionEntry {
  /** addressHash(address): the key, kept when the address itself is erased. */
  addressHash: string;
  /** null once the customer was erased: only the hash is kept. */
  address: string | null;
  reason: SuppressionReason;
  scope: SuppressionScope;
  source: string;
  /** epoch ms */
  createdAt: number;
  /** epoch ms; null: until removed. */
  expiresAt: number | null;
}

/** The list's key for an address: SHA-256 (hex) of the trimmed, lower-cased address. */
export function addressHash(address: string): string {
  return crypto.createHash('sha256').update(address.trim().toLowerCase()).digest('hex');
}
