// Is the daemon alive? The one rule (README, "Is the daemon alive?"; daemon/ops/health.py).
// From Windows only its heartbeat-age half works: there is no /proc there, so a daemon's pid
// cannot be checked and a killed daemon is reported down once its heartbeat is 5 intervals old.
import { readFileSync, readlinkSync } from 'node:fs';

export const DOWN_AFTER_INTERVALS = 5;
const DEFAULT_STATUS_INTERVAL_S = 2;

/** Milliseconds since a status document's heartbeat (by the reader's clock; see liveness()). */
export function heartbeatAgeMs(statusDoc, now = Date.now()) {
  return now - Date.parse(statusDoc.heartbeat_at);
}

/**
 * Whether the daemon behind a status document runs: { verdict: 'alive' | 'stopped' | 'down', reason, pidChecked }.
 * State "stopped" is a clean stop; a daemon on this kernel (same boot id and PID namespace) whose
 * pid is gone is down at once; otherwise it is down when its heartbeat is older than
 * DOWN_AFTER_INTERVALS x status_interval_s, the age being the smaller of now - heartbeat_at and
 * now - the file's mtime (a skewed clock must not kill a live daemon). `pidChecked` says whether
 * the pid half could be applied (false on Windows and on another kernel).
 */
export function liveness(statusDoc, { now = Date.now(), mtimeMs } = {}) {
  const pidChecked = onThisKernel(statusDoc.daemon ?? {});
  if (statusDoc.state === 'stopped') return { verdict: 'stopped', reason: `stopped cleanly at ${statusDoc.updated_at}`, pidChecked };
  const gone = pidChecked ? pidGone(statusDoc.daemon) : null;
  if (gone) return { verdict: 'down', reason: gone, pidChecked };
  const interval = statusDoc.status_interval_s || DEFAULT_STATUS_INTERVAL_S;
  const ages = [Date.parse(statusDoc.heartbeat_at), mtimeMs].filter(Number.isFinite).map((t) => (now - t) / 1000);
  const age = ages.length ? Math.min(...ages) : Infinity;
  if (age > DOWN_AFTER_INTERVALS * interval) {
    return { verdict: 'down', reason: `no heartbeat for ${age.toFixed(0)} s (limit ${DOWN_AFTER_INTERVALS} x ${interval} s)`, pidChecked };
  }
  return { verdict: 'alive', reason: `heartbeat ${Math.max(age, 0).toFixed(0)} s ago`, pidChecked };
}

function onThisKernel({ pid, boot_id: bootId, pid_namespace: pidNamespace }) {
  const here = thisKernel();
  return Number.isInteger(pid) && Boolean(here.bootId) && bootId === here.bootId && pidNamespace === here.pidNamespace;
}

function pidGone({ pid, start_time: startTime }) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    try {
      process.kill(pid, 0); // hidden from /proc (hidepid=) but present
      return null;
    } catch (err) {
      return err.code === 'ESRCH' ? `pid ${pid} is gone` : null;
    }
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  if (fields[0] === 'Z' || fields[0] === 'X') return `pid ${pid} is gone`;
  if (Number.isInteger(startTime) && Number(fields[19]) !== startTime) return `pid ${pid} now belongs to another process`;
  return null;
}

let kernel;
function thisKernel() {
  if (!kernel) {
    // Windows has neither file: bootId stays '' and only the heartbeat half of the rule applies.
    const read = (fn) => { try { return fn().trim(); } catch { return ''; } };
    kernel = {
      bootId: read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
      pidNamespace: read(() => readlinkSync('/proc/self/ns/pid')),
    };
  }
  return kernel;
}
