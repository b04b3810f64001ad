// The keys of encrypted Temporal payloads: one data key per customer (named by their pseudonymous subject, created on
// first use, kept in the store wrapped by the master key), a system key for everything else, and the salt subjects
// are hashed with. Erasing a customer deletes their data key (`shred`): their payloads, wherever Temporal keeps
// them, can no longer be read. Keys are cached briefly, so a key shredded by another process stops working within
// CACHE_TTL_MS there too.
import { customerWorkflowId } from '../core/arbiter-state';
import { ConfigError } from '../core/errors';
import {
  customerPartOfWorkflowId,
  DataKeyMissingError,
  isSubject,
  newDataKey,
  PSEUDONYM_SALT_SUBJECT,
  subjectFor,
  SYSTEM_SUBJECT,
  unwrapDataKey,
  wrapDataKey,
  type MasterKey,
} from '../core/payload-crypto';
import type { DataKeyRecord } from '../store/data-keys-store';
import type { Store } from '../store/store';

export type DataKeyStore = Pick<Store, 'dataKey' | 'addDataKey' | 'deleteDataKey' | 'listDataKeys' | 'rewrapDataKey'>;

/** The master key new data keys are wrapped with, and those of before a rotation (unwrapping only). */
export interface MasterKeys {
  current: MasterKey;
  previous: MasterKey[];
}

/** How long an unwrapped data key is used without reading the store again: the delay of a shred in other processes. */
export const CACHE_TTL_MS = 60_000;
/** Most unwrapped data keys one process keeps. */
const CACHE_SIZE = 10_000;

const NO_MASTER_KEY =
  'no master key is set, so encrypted Temporal payloads can be neither written nor read: set MICROFLOWS_MASTER_KEY=$(openssl rand -base64 32) ' +
  '(or MICROFLOWS_MASTER_KEY_FILE), the same on every worker and server';

export interface PayloadKeyringOptions {
  /** Workflow ids carry subjects instead of customer ids (MICROFLOWS_PSEUDONYMOUS_IDS). */
  pseudonymousIds: boolean;
  now?: () => number;
}

export class PayloadKeyring {
  private readonly cache = new Map<string, { key: Buffer; at: number }>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  private salt: Promise<Buffer> | null = null;
  private loadedSalt: Buffer | null = null;
  private readonly now: () => number;

  constructor(
    private readonly store: DataKeyStore,
    private readonly masterKeys: MasterKeys | null,
    private readonly options: PayloadKeyringOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The id of the master key new data keys are wrapped with, or null without one. */
  get masterKeyId(): string | null {
    return this.masterKeys?.current.id ?? null;
  }

  get pseudonymousIds(): boolean {
    return this.options.pseudonymousIds;
  }

  /** A customer's pseudonymous subject: what names their data key (and, with pseudonymous ids, their workflows). */
  async subjectOf(customerId: string): Promise<string> {
    return subjectFor(await this.loadSalt(), customerId);
  }

  /**
   * Reads (or creates) the salt subjects are hashed with, so that subjectOfLoaded can answer without the store. A
   * process without a master key has nothing to load (and nothing is encrypted by it).
   */
  async ready(): Promise<void> {
    if (this.masterKeys) await this.loadSalt();
  }

  /** subjectOf, once ready() has resolved: for callers that cannot wait (the erasure's naming). */
  subjectOfLoaded(customerId: string): string {
    if (!this.loadedSalt) throw new Error('PayloadKeyring.subjectOfLoaded before ready(): await keyring.ready() at start');
    return subjectFor(this.loadedSalt, customerId);
  }

  /** workflowKeyOf, once ready() has resolved. */
  workflowKeyOfLoaded(customerId: string): string {
    return this.options.pseudonymousIds ? this.subjectOfLoaded(customerId) : customerId;
  }

  private loadSalt(): Promise<Buffer> {
    this.salt ??= this.keyOf(PSEUDONYM_SALT_SUBJECT, 'create').then(
      (salt) => (this.loadedSalt = salt),
      (err: unknown) => {
        this.salt = null;
        throw err;
      },
    );
    return this.salt;
  }

  /** What a customer's workflow ids and CustomerId search attribute carry: their subject with pseudonymous ids, else their id. */
  async workflowKeyOf(customerId: string): Promise<string> {
    return this.options.pseudonymousIds ? this.subjectOf(customerId) : customerId;
  }

  /**
   * The subject whose key encrypts a workflow's payloads: its customer's (from `customer/…` and `flow/…/…/n` ids), or
   * the system's. An id part that is a subject is one when ids are pseudonymous; otherwise it is a customer id.
   */
  async subjectOfWorkflow(workflowId: string | undefined): Promise<string> {
    const part = workflowId === undefined ? null : customerPartOfWorkflowId(workflowId);
    if (part === null) return SYSTEM_SUBJECT;
    if (this.options.pseudonymousIds && isSubject(part)) return part;
    return this.subjectOf(part);
  }

  /** The subject's data key, created (and stored) on first use. */
  keyForEncrypting(subject: string): Promise<Buffer> {
    return this.keyOf(subject, 'create');
  }

  /** The subject's data key; DataKeyMissingError when it was shredded (or never made: a payload from another store). */
  keyForDecrypting(subject: string): Promise<Buffer> {
    return this.keyOf(subject, 'existing');
  }

  /**
   * Crypto-shredding: deletes the customer's data key, so every payload encrypted with it is unreadable from now on
   * (in this process at once; in others once their cached copy expires). Whether there was a key.
   */
  async shred(customerId: string): Promise<boolean> {
    const subject = await this.subjectOf(customerId);
    const deleted = await this.store.deleteDataKey(subject);
    this.forget(subject);
    return deleted;
  }

  /** Drops a subject's key from this process's cache (after its row was deleted elsewhere, e.g. by an erasure's store method). */
  forget(subject: string): void {
    this.cache.delete(subject);
  }

  /**
   * Rewraps every data key not wrapped by the current master key (after a rotation, with the old key among the
   * previous ones). Counts what it rewrapped and what was current already.
   */
  async rewrapAll(): Promise<{ rewrapped: number; current: number }> {
    const master = this.requireMaster();
    const all = await this.store.listDataKeys();
    let rewrapped = 0;
    for (const record of all.filter((r) => r.masterKeyId !== master.current.id)) {
      const key = this.unwrap(record);
      if (await this.store.rewrapDataKey(record.subject, record.masterKeyId, { wrappedKey: wrapDataKey(master.current, record.subject, key), masterKeyId: master.current.id })) rewrapped += 1;
    }
    return { rewrapped, current: all.length - rewrapped };
  }

  private requireMaster(): MasterKeys {
    if (!this.masterKeys) throw new ConfigError(NO_MASTER_KEY);
    return this.masterKeys;
  }

  private unwrap(record: DataKeyRecord): Buffer {
    const master = this.requireMaster();
    const wrapping = [master.current, ...master.previous].find((m) => m.id === record.masterKeyId);
    if (!wrapping) {
      throw new ConfigError(
        `the data key of ${record.subject} is wrapped by master key ${record.masterKeyId}, which is neither MICROFLOWS_MASTER_KEY ` +
          `(${master.current.id}) nor one of MICROFLOWS_PREVIOUS_MASTER_KEYS${master.previous.length > 0 ? ` (${master.previous.map((m) => m.id).join(', ')})` : ''}: ` +
          'give the master key it was wrapped with in MICROFLOWS_PREVIOUS_MASTER_KEYS and run `microflows data-keys rewrap`',
      );
    }
    return unwrapDataKey(wrapping, record.subject, record.wrappedKey);
  }

  private keyOf(subject: string, mode: 'create' | 'existing'): Promise<Buffer> {
    const cached = this.cache.get(subject);
    if (cached && this.now() - cached.at < CACHE_TTL_MS) {
      // Re-inserted: the map's order is the least recently used first.
      this.cache.delete(subject);
      this.cache.set(subject, cached);
      return Promise.resolve(cached.key);
    }
    // One store read per subject at a time (a create and a read of the same subject are separate: one may fail).
    const loadKey = `${mode}:${subject}`;
    const inFlight = this.loading.get(loadKey);
    if (inFlight) return inFlight;
    const load = this.load(subject, mode).finally(() => this.loading.delete(loadKey));
    this.loading.set(loadKey, load);
    return load;
  }

  private async load(subject: string, mode: 'create' | 'existing'): Promise<Buffer> {
    const master = this.requireMaster();
    let record = await this.store.dataKey(subject);
    if (!record) {
      if (mode === 'existing') {
        throw new DataKeyMissingError(`the data key of ${subject} is not in the store: the customer was erased (their payloads were crypto-shredded), or the payload comes from another installation`);
      }
      const fresh = newDataKey();
      record = await this.store.addDataKey({ subject, wrappedKey: wrapDataKey(master.current, subject, fresh), masterKeyId: master.current.id, createdAt: this.now() });
    }
    const key = this.unwrap(record);
    this.cache.set(subject, { key, at: this.now() });
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    return key;
  }
}

/**
 * How an erasure (server/customer-erasure.ts) names a customer's Temporal parts: the arbiter's workflow id (their
 * subject under pseudonymous ids) and the data key row it deletes. The key is dropped from this process's cache too;
 * other processes stop using theirs within CACHE_TTL_MS. Needs `await keyring.ready()` first.
 */
export function erasureNaming(keyring: PayloadKeyring): { arbiterWorkflowId?(customerId: string): string; dataKeySubject?(customerId: string): string; forgetDataKey?(subject: string): void } {
  // No master key (encryption off from the start): no data key was ever made, and ids are the customers' own.
  if (keyring.masterKeyId === null) return {};
  return {
    arbiterWorkflowId: (customerId) => customerWorkflowId(keyring.workflowKeyOfLoaded(customerId)),
    dataKeySubject: (customerId) => {
      const subject = keyring.subjectOfLoaded(customerId);
      keyring.forget(subject);
      return subject;
    },
    // Again once the row is deleted: a decode between the first forget and the delete may have cached the key.
    forgetDataKey: (subject) => keyring.forget(subject),
  };
}
