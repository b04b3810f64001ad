// The failure converter of workflows, workers and clients (client/payload-codec.ts FAILURE_CONVERTER_PATH): a
// failure's message and stack trace go in its encoded attributes, which the payload codec encrypts. Bundled into the
// workflow sandbox, so it imports nothing but the SDK.
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
