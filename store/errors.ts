// Errors the store raises for conflicts a user can cause and fix.
import { MicroflowsError } from '../core/errors';

/** A flow file changed but kept its version number: running customers would see two different flows under one version. */
export class FlowVersionConflictError extends MicroflowsError {
  override readonly status = 409;
  override readonly code = 'flow_version_conflict';
  override name = 'FlowVersionConflictError';
  constructor(
    readonly flowId: string,
    readonly version: number,
    readonly file: string,
    /** sha256 of the version already registered */
    readonly registeredSha256: string,
    readonly sha256: string,
  ) {
    super(`flow ${flowId} version ${version} is already registered with different content (from ${file}): bump "version" in ${file}`);
  }
}
