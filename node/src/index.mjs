// posed-client: the Node side of posed (README.md). The BullMQ helpers are at 'posed-client/queue'.
export { createClient } from './client.mjs';
export { PosedError, FRAMES_ERRORS } from './errors.mjs';
export { readFrames, nameJoints } from './frames.mjs';
export { cleanInbox, cleanOutbox } from './housekeeping.mjs';
export { DOWN_AFTER_INTERVALS, heartbeatAgeMs, liveness } from './liveness.mjs';
export { listOutcomes, outcomeStem } from './naming.mjs';
export { DEFAULT_SCHEMAS_DIR, loadSchemaValidator, loadValidator } from './schemas.mjs';
export { checkJobId, checkMetadata, checkOptions, checkSidecar, MAX_JOB_ID_CHARS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_SIDECAR_BYTES } from './sidecar.mjs';
