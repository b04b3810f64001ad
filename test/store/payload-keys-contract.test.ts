// The payload codec over a real store (SQLite, and PostgreSQL with TEST_DATABASE_URL): each customer's payloads are
// sealed with a data key of their own, named by a pseudonymous subject; a changed byte is refused; payloads that are
// not encrypted pass through; shredding a customer's key leaves their payloads unreadable and nobody else's; two
// processes making a customer's first key at once end with one; and the master key rotates (wrap under A, rotate to
// B with A as previous, rewrap, drop A) with every payload still readable, while a wrong or missing master key is
// refused naming the variable to set.
import { randomBytes } from 'node:crypto';
import type { Payload, SerializationContext } from '@temporalio/common';
import { defaultPayloadConverter } from '@temporalio/common';
import { EncryptingPayloadCodec, isEncryptedPayload, keyIdOf } from '../../client/payload-codec';
import { PayloadKeyring, type MasterKeys } from '../../client/payload-keys';
import { customerWorkflowId, flowRunWorkflowId } from '../../core/arbiter-state';
import { ConfigError } from '../../core/errors';
import { DataKeyMissingError, parseMasterKey, PayloadDecryptionError, PSEUDONYM_SALT_SUBJECT, SYSTEM_SUBJECT } from '../../core/payload-crypto';
import type { KyselyStore } from '../../store/kysely-store';
import { storeBackends } from '../support/store-backends';

let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;
const masterKey = () => parseMasterKey(randomBytes(32).toString('base64'), 'MICROFLOWS_MASTER_KEY');
const workflow = (workflowId: string): SerializationContext => ({ type: 'workflow', namespace: 'default', workflowId });
const activityOf = (workflowId: string): SerializationContext => ({ type: 'activity', namespace: 'default', workflowId, activityId: '1', isLocal: true });

function codecOf(store: KyselyStore, keys: MasterKeys | null, options: { encrypt?: boolean; pseudonymousIds?: boolean } = {}): EncryptingPayloadCodec {
  return new EncryptingPayloadCodec(new PayloadKeyring(store, keys, { pseudonymousIds: options.pseudonymousIds ?? false }), { encrypt: options.encrypt ?? true });
}

const personal = (customerId: string) => ({ customerId, name: 'Product Added', properties: { email: `${customerId}@example.com`, shipping_address: '12 Rue de la Paix, Paris' } });
const toPayload = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const fromPayload = (payload: Payload): unknown => defaultPayloadConverter.fromPayload(payload);
const bytesOf = (payload: Payload) => Buffer.concat([...Object.values(payload.metadata ?? {}).map((v) => Buffer.from(v!)), Buffer.from(payload.data ?? new Uint8Array())]).toString('latin1');

for (const backend of storeBackends('payload-keys-contract')) {
  backend.describe(`payload data keys: ${backend.name}`, () => {
    let store: KyselyStore;
    const A = masterKey();
    const B = masterKey();

    beforeAll(async () => {
      store = await backend.open();
    });

    afterAll(() => backend.dispose());

    it("seals each customer's payloads with their own key, named by a subject that is not their id, and opens them again", async () => {
      const codec = codecOf(store, { current: A, previous: [] });
      const [alice, bob] = [unique('alice'), unique('bob')];
      const [sealedAlice] = await codec.encode([toPayload(personal(alice))], workflow(customerWorkflowId(alice)));
      const [sealedRun] = await codec.encode([toPayload(personal(alice))], activityOf(flowRunWorkflowId('cart-abandonment', alice, 2)));
      const [sealedBob] = await codec.encode([toPayload(personal(bob))], workflow(flowRunWorkflowId('winback', bob, 1)));
      const [system] = await codec.encode([toPayload({ swept: 3 })], workflow('microflows-sweep-run'));
      for (const sealed of [sealedAlice!, sealedRun!, sealedBob!, system!]) {
        expect(isEncryptedPayload(sealed)).toBe(true);
        for (const plain of [alice, bob, '@example.com', 'Rue de la Paix', 'Product Added', 'swept']) expect(bytesOf(sealed)).not.toContain(plain);
      }
      // One key per customer, the same for their arbiter and their runs' activities; another for Bob; the system's for the sweep.
      expect(keyIdOf(sealedAlice!)).toBe(await codec.keyring.subjectOf(alice));
      expect(keyIdOf(sealedRun!)).toBe(keyIdOf(sealedAlice!));
      expect(keyIdOf(sealedBob!)).toBe(await codec.keyring.subjectOf(bob));
      expect(keyIdOf(sealedBob!)).not.toBe(keyIdOf(sealedAlice!));
      expect(keyIdOf(system!)).toBe(SYSTEM_SUBJECT);
      // A codec of another process (its own keyring and cache) opens them from the store's keys alone.
      const other = codecOf(await backend.open(), { current: A, previous: [] });
      expect((await other.decode([sealedAlice!, sealedRun!, sealedBob!, system!])).map(fromPayload)).toEqual([personal(alice), personal(alice), personal(bob), { swept: 3 }]);
      // The store holds wrapped keys only, by subject: no customer id anywhere in the table.
      const rows = await store.listDataKeys();
      expect(rows.map((r) => r.subject)).toEqual(expect.arrayContaining([keyIdOf(sealedAlice!), keyIdOf(sealedBob!), SYSTEM_SUBJECT, PSEUDONYM_SALT_SUBJECT]));
      expect(JSON.stringify(rows)).not.toContain(alice);
      expect(rows.every((r) => r.masterKeyId === A.id)).toBe(true);
    });

    it('refuses a sealed payload with any byte changed, and passes through what is not encrypted (histories of before)', async () => {
      const codec = codecOf(store, { current: A, previous: [] });
      const customer = unique('tamper');
      const [sealed] = await codec.encode([toPayload(personal(customer))], workflow(customerWorkflowId(customer)));
      const data = Buffer.from(sealed!.data!);
      for (const at of [0, 11, 12, Math.floor(data.length / 2), data.length - 1]) {
        const changed = Buffer.from(data);
        changed[at] = changed[at]! ^ 0x01;
        await expect(codec.decode([{ ...sealed!, data: changed }])).rejects.toBeInstanceOf(PayloadDecryptionError);
      }
      // Moved onto another customer's key id: refused as well (the subject is authenticated with the bytes).
      const [otherSealed] = await codec.encode([toPayload('x')], workflow(customerWorkflowId(unique('other'))));
      await expect(codec.decode([{ metadata: { ...sealed!.metadata, 'encryption-key-id': otherSealed!.metadata!['encryption-key-id']! }, data }])).rejects.toBeInstanceOf(PayloadDecryptionError);
      const plain = [toPayload(personal(customer)), toPayload(null), { metadata: { encoding: Buffer.from('binary/custom') }, data: Buffer.from([1, 2, 3]) }];
      expect(await codec.decode(plain)).toEqual(plain);
    });

    it('with encryption off, writes plaintext and still reads what was encrypted', async () => {
      const customer = unique('off');
      const [sealed] = await codecOf(store, { current: A, previous: [] }).encode([toPayload(personal(customer))], workflow(customerWorkflowId(customer)));
      const off = codecOf(store, { current: A, previous: [] }, { encrypt: false });
      const [written] = await off.encode([toPayload(personal(customer))], workflow(customerWorkflowId(customer)));
      expect(isEncryptedPayload(written!)).toBe(false);
      expect((await off.decode([sealed!])).map(fromPayload)).toEqual([personal(customer)]);
    });

    it("shredding a customer's key makes their payloads unreadable everywhere, and nobody else's", async () => {
      const codec = codecOf(store, { current: A, previous: [] });
      const [gone, kept] = [unique('erased'), unique('kept')];
      const [goneSealed] = await codec.encode([toPayload(personal(gone))], workflow(customerWorkflowId(gone)));
      const [keptSealed] = await codec.encode([toPayload(personal(kept))], workflow(customerWorkflowId(kept)));
      expect(await codec.keyring.shred(gone)).toBe(true);
      expect(await store.dataKey(keyIdOf(goneSealed!)!)).toBeUndefined();
      await expect(codec.decode([goneSealed!])).rejects.toBeInstanceOf(DataKeyMissingError);
      // A process that never cached the key cannot open it either; the other customer is untouched.
      const fresh = codecOf(await backend.open(), { current: A, previous: [] });
      await expect(fresh.decode([goneSealed!])).rejects.toBeInstanceOf(DataKeyMissingError);
      expect((await fresh.decode([keptSealed!])).map(fromPayload)).toEqual([personal(kept)]);
      expect(await codec.keyring.shred(gone)).toBe(false);
    });

    it("two processes sealing a new customer's first payloads at once end with one key that opens both", async () => {
      for (let round = 0; round < 5; round++) {
        const customer = unique('race');
        const codecs = [codecOf(await backend.open(), { current: A, previous: [] }), codecOf(await backend.open(), { current: A, previous: [] })];
        const sealed = await Promise.all(codecs.map((codec, i) => codec.encode([toPayload({ from: i })], workflow(customerWorkflowId(customer)))));
        for (const codec of codecs) expect((await codec.decode(sealed.flat())).map(fromPayload)).toEqual([{ from: 0 }, { from: 1 }]);
      }
    });

    it('rotates the master key: wrapped under A, read under B with A as previous, rewrapped, then read under B alone', async () => {
      const subjectsBefore = new Set((await store.listDataKeys()).map((r) => r.subject));
      const customer = unique('rotate');
      const [sealed] = await codecOf(store, { current: A, previous: [] }).encode([toPayload(personal(customer))], workflow(customerWorkflowId(customer)));
      const rotated = codecOf(await backend.open(), { current: B, previous: [A] });
      expect((await rotated.decode([sealed!])).map(fromPayload)).toEqual([personal(customer)]);
      // Under B before the rewrap, a key wrapped by A cannot be read without A: the error says what to set.
      await expect(codecOf(await backend.open(), { current: B, previous: [] }).decode([sealed!])).rejects.toThrow(/MICROFLOWS_PREVIOUS_MASTER_KEYS/);
      const { rewrapped, current } = await rotated.keyring.rewrapAll();
      expect(rewrapped).toBe(subjectsBefore.size + 1);
      expect(current).toBe(0);
      expect((await store.listDataKeys()).every((r) => r.masterKeyId === B.id)).toBe(true);
      expect(await rotated.keyring.rewrapAll()).toEqual({ rewrapped: 0, current: subjectsBefore.size + 1 });
      const onlyB = codecOf(await backend.open(), { current: B, previous: [] });
      expect((await onlyB.decode([sealed!])).map(fromPayload)).toEqual([personal(customer)]);
      // Subjects do not change with the master key: the salt was rewrapped, not replaced.
      expect(await onlyB.keyring.subjectOf(customer)).toBe(keyIdOf(sealed!));
      // The old key alone no longer reads anything; no key at all is refused naming MICROFLOWS_MASTER_KEY.
      await expect(codecOf(await backend.open(), { current: A, previous: [] }).decode([sealed!])).rejects.toThrow(/wrapped by master key .* neither MICROFLOWS_MASTER_KEY/);
      const none = codecOf(await backend.open(), null);
      await expect(none.decode([sealed!])).rejects.toBeInstanceOf(ConfigError);
      await expect(none.decode([sealed!])).rejects.toThrow(/MICROFLOWS_MASTER_KEY=\$\(openssl rand -base64 32\)/);
      await expect(none.encode([toPayload(1)], workflow(customerWorkflowId(customer)))).rejects.toThrow(/MICROFLOWS_MASTER_KEY/);
    });

    it('with pseudonymous ids, a workflow id that carries a subject is sealed under that subject', async () => {
      // B with A as previous: reads keys wrapped by either, whether the rotation above has run or not.
      const codec = codecOf(await backend.open(), { current: B, previous: [A] }, { pseudonymousIds: true });
      const customer = unique('pseudo');
      const key = await codec.keyring.workflowKeyOf(customer);
      expect(key).toBe(await codec.keyring.subjectOf(customer));
      expect(key).not.toContain(customer);
      const [byId] = await codec.encode([toPayload(1)], workflow(customerWorkflowId(customer)));
      const [bySubject] = await codec.encode([toPayload(2)], workflow(flowRunWorkflowId('winback', key, 1)));
      expect(keyIdOf(byId!)).toBe(key);
      expect(keyIdOf(bySubject!)).toBe(key);
    });
  });
}

