// The Temporal PayloadCodec of every client and worker microflows makes: each payload is sealed (AES-256-GCM) with
// the data key of the customer whose workflow it belongs to — known from the serialization context's workflow id
// (`customer/…`, `flow/…/…/n`, and the workflow that scheduled an activity) — or with the system key. Payloads
// that are not `binary/encrypted` pass through decode unchanged, so histories recorded before stay readable.
import type { DataConverter, Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA, openPayload, sealPayload, SYSTEM_SUBJECT } from '../core/payload-crypto';
import type { PayloadKeyring } from './payload-keys';

const ENCODING = Buffer.from(ENCRYPTED_ENCODING);

function metadataText(payload: Payload, key: string): string | undefined {
  const value = payload.metadata?.[key];
  return value ? Buffer.from(value).toString('utf8') : undefined;
}

/** Whether the codec sealed this payload (its metadata says `binary/encrypted`). */
export function isEncryptedPayload(payload: Payload): boolean {
  return metadataText(payload, 'encoding') === ENCRYPTED_ENCODING;
}

/** The subject whose data key a sealed payload needs, from its metadata. */
export function keyIdOf(payload: Payload): string | undefined {
  return metadataText(payload, KEY_ID_METADATA);
}

export interface EncryptingCodecOptions {
  /** Seal new payloads (MICROFLOWS_PAYLOAD_ENCRYPTION); decoding sealed ones happens either way. */
  encrypt: boolean;
}

export class EncryptingPayloadCodec implements PayloadCodec {
  constructor(
    readonly keyring: PayloadKeyring,
    private readonly options: EncryptingCodecOptions,
  ) {}

  async encode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    if (!this.options.encrypt || payloads.length === 0) return payloads;
    const subject = await this.keyring.subjectOfWorkflow(context?.workflowId);
    return this.encodeFor(subject, payloads);
  }

  /** Seals payloads with `subject`'s data key (the codec endpoint's encode uses the system key). */
  async encodeFor(subject: string, payloads: Payload[]): Promise<Payload[]> {
    const key = await this.keyring.keyForEncrypting(subject);
    return payloads.map((payload) => ({
      metadata: { encoding: ENCODING, [KEY_ID_METADATA]: Buffer.from(subject) },
      data: sealPayload(key, subject, temporal.api.common.v1.Payload.encode(payload).finish()),
    }));
  }

  /** Opens sealed payloads; DataKeyMissingError when a key was shredded, PayloadDecryptionError when one was altered. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((payload) => this.decodeOne(payload)));
  }

  async decodeOne(payload: Payload): Promise<Payload> {
    if (!isEncryptedPayload(payload)) return payload;
    const subject = keyIdOf(payload) ?? SYSTEM_SUBJECT;
    const key = await this.keyring.keyForDecrypting(subject);
    const inner = temporal.api.common.v1.Payload.decode(openPayload(key, subject, payload.data ?? new Uint8Array()));
    return { metadata: inner.metadata, data: inner.data };
  }
}

/**
 * Failures (activity errors, workflow failures) carry their message and stack trace in the encoded attributes, so the
 * codec seals them too: an SMTP error naming a recipient is personal data.
 */
export const FAILURE_CONVERTER_PATH = require.resolve('../workflows/failure-converter');

/** The data converter of every client and worker: the encrypting codec and the failure converter above. */
export function encryptingDataConverter(codec: EncryptingPayloadCodec): DataConverter {
  return { failureConverterPath: FAILURE_CONVERTER_PATH, payloadCodecs: [codec] };
}
