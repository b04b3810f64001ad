// The cryptography of encrypted Temporal payloads, with no I/O: master keys (parsed, named by a short hash), data
// keys wrapped by a master key, payload bytes sealed by a data key (AES-256-GCM), and the pseudonymous subject a
// customer's data key and (optionally) workflow ids are named by. client/payload-keys.ts keeps the keys in the store.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { ConfigError, MicroflowsError } from './errors';

/** The metadata `encoding` of a payload this codec sealed; anything else passes through (histories from before). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** The metadata key naming the data key (its subject) a sealed payload needs. */
export const KEY_ID_METADATA = 'encryption-key-id';
/** The data key of every payload that belongs to no customer (sweeps, schedules, the codec endpoint's encode). */
export const SYSTEM_SUBJECT = '~system';
/** The row holding the secret that customer ids are hashed with into subjects (wrapped like a data key). */
export const PSEUDONYM_SALT_SUBJECT = '~pseudonym-salt';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** `ps_` and 32 base64url characters (192 bits of an HMAC-SHA-256): short in workflow ids, never a customer id itself. */
const SUBJECT = /^ps_[A-Za-z0-9_-]{32}$/;

/** A master key: 32 bytes, and its id (a short hash, stored beside every key it wraps). */
export interface MasterKey {
  id: string;
  key: Buffer;
}

/** A payload's data key is gone (the customer was erased: crypto-shredding) or was never stored. */
export class DataKeyMissingError extends MicroflowsError {
  override readonly status = 410;
  override readonly code = 'data_key_missing';
  override name = 'DataKeyMissingError';
}

/** Sealed bytes that do not open: altered, truncated, or sealed by another key. */
export class PayloadDecryptionError extends MicroflowsError {
  override readonly status = 422;
  override readonly code = 'payload_decryption_failed';
  override name = 'PayloadDecryptionError';
}

/** The id of a master key: the first 16 hex digits of a SHA-256 of it (naming, never revealing, the key). */
export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update('microflows master key\0').update(key).digest('hex').slice(0, 16);
}

/**
 * A master key from its text: 32 bytes as 64 hex digits or as base64 (44 characters, `openssl rand -base64 32`).
 * Anything else is a ConfigError naming `variable` and how to make one.
 */
export function parseMasterKey(text: string, variable: string): MasterKey {
  const trimmed = text.trim();
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key || key.length !== KEY_BYTES) {
    throw new ConfigError(
      `${variable} is not a master key: give 32 random bytes as 64 hex digits or as base64, e.g. ${variable}=$(openssl rand -base64 32)` +
        ` (it is ${trimmed.length} characters long)`,
    );
  }
  return { id: masterKeyId(key), key };
}

/** A fresh random data key (or pseudonym salt). */
export function newDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

function seal(key: Buffer, plaintext: Uint8Array, associated: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(associated, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function open(key: Buffer, sealed: Uint8Array, associated: string): Buffer | null {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (bytes.length < IV_BYTES + TAG_BYTES) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(associated, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return null;
  }
}

/**
 * A data key wrapped by a master key, as stored (base64). The subject is authenticated with it: a wrapped key copied
 * onto another subject's row does not unwrap.
 */
export function wrapDataKey(master: MasterKey, subject: string, dataKey: Buffer): string {
  return seal(master.key, dataKey, `data key\0${subject}`).toString('base64');
}

export function unwrapDataKey(master: MasterKey, subject: string, wrapped: string): Buffer {
  const key = open(master.key, Buffer.from(wrapped, 'base64'), `data key\0${subject}`);
  if (!key || key.length !== KEY_BYTES) {
    throw new PayloadDecryptionError(`the stored data key of ${subject} does not unwrap with master key ${master.id}: the row was altered, or that master key is not the one it was wrapped with`);
  }
  return key;
}

/** Payload bytes sealed by a data key; the subject is authenticated with them (a payload cannot be moved to another key). */
export function sealPayload(dataKey: Buffer, subject: string, plaintext: Uint8Array): Buffer {
  return seal(dataKey, plaintext, `payload\0${subject}`);
}

export function openPayload(dataKey: Buffer, subject: string, sealed: Uint8Array): Buffer {
  const plaintext = open(dataKey, sealed, `payload\0${subject}`);
  if (!plaintext) throw new PayloadDecryptionError(`an encrypted payload of ${subject} does not decrypt: it was altered or truncated`);
  return plaintext;
}

/** The pseudonymous subject of a customer: a keyed hash of the id (stable, not reversible without the salt). */
export function subjectFor(salt: Buffer, customerId: string): string {
  return `ps_${createHmac('sha256', salt).update(customerId, 'utf8').digest('base64url').slice(0, 32)}`;
}

export function isSubject(text: string): boolean {
  return SUBJECT.test(text);
}

/**
 * Whose payloads a workflow's are, from its id: `customer/<x>` and `flow/<flow>/<x>/<n>` name a customer (flow ids are
 * kebab-case: no slash), anything else (sweeps, schedules) none. `<x>` is the customer id, or their subject when
 * MICROFLOWS_PSEUDONYMOUS_IDS made the ids.
 */
export function customerPartOfWorkflowId(workflowId: string): string | null {
  if (workflowId.startsWith('customer/')) return workflowId.slice('customer/'.length) || null;
  const run = /^flow\/[^/]+\/([\s\S]+)\/\d+$/.exec(workflowId);
  return run ? run[1]! : null;
}
