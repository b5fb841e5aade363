// One error class for the whole package: `.code` is an E_* code from a daemon's error report,
// or E_CLIENT_* for a problem this package found itself (README, "Error codes").

/** An error from the protocol: `.code` is E_* from an error report, or E_CLIENT_* from this package. */
export class PosedError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'PosedError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** The damage a frames file can have, each with its own code (frames.mjs). */
export const FRAMES_ERRORS = Object.freeze({
  missing: 'E_CLIENT_FRAMES_MISSING', // the file named by the manifest is not there
  cut: 'E_CLIENT_FRAMES_CUT', // the last line has no newline: the file was cut mid-line
  json: 'E_CLIENT_FRAMES_JSON', // a line is not JSON (or not UTF-8)
  schema: 'E_CLIENT_FRAMES_SCHEMA', // a line is JSON but not a frame
  order: 'E_CLIENT_FRAMES_ORDER', // frame_index does not follow the previous line's
  lines: 'E_CLIENT_FRAMES_LINES', // whole file read: line count differs from the manifest
  bytes: 'E_CLIENT_FRAMES_BYTES', // size differs from the manifest
  sha256: 'E_CLIENT_FRAMES_SHA256', // same size and lines, other bytes
});
