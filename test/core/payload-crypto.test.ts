// The payload cryptography on its own: master keys parse only as 32 bytes and say which variable is wrong, wrapped
// data keys and sealed payloads round-trip and refuse any change (a flipped bit, another subject, another key),
// subjects are stable keyed hashes that never contain the id, and workflow ids name their customer.
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../../core/errors';
import {
  customerPartOfWorkflowId,
  isSubject,
  masterKeyId,
  newDataKey,
  openPayload,
  parseMasterKey,
  PayloadDecryptionError,
  sealPayload,
  subjectFor,
  unwrapDataKey,
  wrapDataKey,
} from '../../core/payload-crypto';
import { flowRunWorkflowId, customerWorkflowId } from '../../core/arbiter-state';
import { seededRandom } from '../support/seeded-random';
import { runSeed } from '../support/run-seed';

describe('parseMasterKey', () => {
  it('reads 32 bytes given as hex or base64 (with or without padding, url-safe too) and names the key by a short hash', () => {
    const bytes = randomBytes(32);
    const forms = [bytes.toString('hex'), bytes.toString('hex').toUpperCase(), bytes.toString('base64'), bytes.toString('base64url'), ` ${bytes.toString('base64')}\n`];
    for (const text of forms) {
      const key = parseMasterKey(text, 'MICROFLOWS_MASTER_KEY');
      expect(key.key.equals(bytes)).toBe(true);
      expect(key.id).toBe(masterKeyId(bytes));
      expect(key.id).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(parseMasterKey(randomBytes(32).toString('hex'), 'X').id).not.toBe(masterKeyId(bytes));
  });

  it('refuses anything that is not 32 bytes, naming the variable and how to make a key, never echoing the text', () => {
    const bad = ['', 'short', randomBytes(31).toString('hex'), randomBytes(33).toString('hex'), randomBytes(16).toString('base64'), randomBytes(48).toString('base64'), 'z'.repeat(64)];
    for (const text of bad) {
      let error: unknown;
      try {
        parseMasterKey(text, 'MICROFLOWS_PREVIOUS_MASTER_KEYS (key 2)');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain('MICROFLOWS_PREVIOUS_MASTER_KEYS (key 2)');
      expect((error as Error).message).toContain('openssl rand -base64 32');
      if (text.length > 6) expect((error as Error).message).not.toContain(text);
    }
  });
});

describe('wrapped data keys', () => {
  const master = parseMasterKey(randomBytes(32).toString('base64'), 'MICROFLOWS_MASTER_KEY');
  const other = parseMasterKey(randomBytes(32).toString('base64'), 'MICROFLOWS_MASTER_KEY');

  it('unwrap what was wrapped, under the same master key and subject only', () => {
    const key = newDataKey();
    const wrapped = wrapDataKey(master, 'ps_a', key);
    expect(wrapped).not.toContain(key.toString('base64'));
    expect(unwrapDataKey(master, 'ps_a', wrapped).equals(key)).toBe(true);
    expect(() => unwrapDataKey(other, 'ps_a', wrapped)).toThrow(PayloadDecryptionError);
    // A wrapped key copied onto another subject's row does not unwrap there.
    expect(() => unwrapDataKey(master, 'ps_b', wrapped)).toThrow(PayloadDecryptionError);
  });
});

describe('sealed payloads', () => {
  const seed = runSeed('payload-crypto');
  const rand = seededRandom(seed);

  it(`round-trip any bytes, and any flipped bit, cut or other subject or key is refused (seed ${seed})`, () => {
    for (let i = 0; i < 200; i++) {
      const key = newDataKey();
      const plaintext = randomBytes(Math.floor(rand() * 300));
      const sealed = sealPayload(key, 'ps_x', plaintext);
      expect(openPayload(key, 'ps_x', sealed).equals(plaintext)).toBe(true);
      // Fresh IV each time: the same plaintext never seals the same.
      expect(sealPayload(key, 'ps_x', plaintext).equals(sealed)).toBe(false);
      const flipped = Buffer.from(sealed);
      const at = Math.floor(rand() * flipped.length);
      flipped[at] = flipped[at]! ^ (1 << Math.floor(rand() * 8));
      expect(() => openPayload(key, 'ps_x', flipped)).toThrow(PayloadDecryptionError);
      expect(() => openPayload(key, 'ps_x', sealed.subarray(0, Math.floor(rand() * sealed.length)))).toThrow(PayloadDecryptionError);
      expect(() => openPayload(key, 'ps_y', sealed)).toThrow(PayloadDecryptionError);
      expect(() => openPayload(newDataKey(), 'ps_x', sealed)).toThrow(PayloadDecryptionError);
    }
  });
});

describe('subjects', () => {
  it('are stable per salt, differ per customer and per salt, have the subject form and never contain the id', () => {
    const salt = newDataKey();
    const ids = ['c-1', 'c-2', 'alice@example.com', 'ps_' + 'a'.repeat(32), '', 'ü/ß'];
    const subjects = ids.map((id) => subjectFor(salt, id));
    expect(new Set(subjects).size).toBe(ids.length);
    ids.forEach((id, i) => {
      expect(subjectFor(salt, id)).toBe(subjects[i]);
      expect(isSubject(subjects[i]!)).toBe(true);
      if (id.length > 2) expect(subjects[i]).not.toContain(id);
    });
    expect(subjectFor(newDataKey(), 'c-1')).not.toBe(subjects[0]);
    expect(isSubject('c-1')).toBe(false);
    expect(isSubject(`${subjects[0]}x`)).toBe(false);
  });
});

describe('customerPartOfWorkflowId', () => {
  it('names the customer of arbiters and flow runs (ids with slashes too), and no one for anything else', () => {
    for (const id of ['c-1', 'a/b/c', 'ps_' + 'Q'.repeat(32), '42']) {
      expect(customerPartOfWorkflowId(customerWorkflowId(id))).toBe(id);
      expect(customerPartOfWorkflowId(flowRunWorkflowId('cart-abandonment', id, 3))).toBe(id);
    }
    for (const id of ['microflows-sweep-run-2026-01-01T00:00:00Z', 'microflows-segment-sweep-run', 'segment-sweep-test-wb', 'customer/', 'flow/x/1', 'flow//c/1']) {
      expect(customerPartOfWorkflowId(id)).toBeNull();
    }
  });
});
