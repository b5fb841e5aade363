#!/usr/bin/env bash
# Install posed as a systemd service inside WSL2.
#   sudo ./scripts/install-service.sh --inbox /mnt/c/posed/inbox --outbox /mnt/c/posed/outbox [--user NAME]
#   ./scripts/install-service.sh --inbox DIR --outbox DIR --verify-only OUTDIR   (no root, no changes)
# Checks that systemd runs in this distro, writes /etc/posed/posed.yaml, installs
# systemd/posed.service with your paths, verifies it, enables and starts it, and prints the
# .wslconfig settings that keep WSL from idle-terminating a distro that only runs services.
# --verify-only renders the unit into OUTDIR/posed.service and runs the same verification only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
inbox="" outbox="" user="posed" config="/etc/posed/posed.yaml" dry_run=0 verify_dir=""

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --inbox) inbox="$2"; shift 2 ;;
    --outbox) outbox="$2"; shift 2 ;;
    --user) user="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --verify-only) verify_dir="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$inbox" ] && [ -n "$outbox" ] || usage
for dir in "$inbox" "$outbox"; do
  case "$dir" in /*) ;; *) echo "posed: --inbox and --outbox must be absolute paths" >&2; exit 2 ;; esac
done

say() { printf 'posed: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

# The unit with the paths filled in (done in Python: paths are data, not sed code). Each path is
# quoted for systemd: backslash and double quote escaped, "%" doubled so it is no specifier.
# ReadWritePaths gets the "-" prefix: at boot /mnt/c may not be mounted yet, and without it
# systemd refuses to start the service; the daemon itself waits for a missing inbox.
render_unit() {  # render_unit OUT_FILE
  WSL_DISTRO_NAME="${WSL_DISTRO_NAME:-}" "$root/.venv/bin/python" - "$root" "$inbox" "$outbox" "$user" "$config" "$1" <<'PY'
import os, pathlib, sys
root, inbox, outbox, user, config, out = sys.argv[1:]

def quoted(path, prefix=""):
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{prefix}{escaped}"'

text = pathlib.Path(root, "systemd", "posed.service").read_text()
text = text.replace("/opt/posed/.venv/bin/posed", f"{root}/.venv/bin/posed")
text = text.replace("--config /etc/posed/posed.yaml", f"--config {quoted(config)}")
text = text.replace("ReadWritePaths=-/mnt/c/posed/inbox -/mnt/c/posed/outbox", f"ReadWritePaths={quoted(inbox, '-')} {quoted(outbox, '-')}")
text = text.replace("User=posed", f"User={user}").replace("Group=posed", f"Group={user}")
distro = os.environ.get("WSL_DISTRO_NAME")  # systemd services do not inherit it
if distro:
    text = text.replace("Environment=PYTHONUNBUFFERED=1", f"Environment=PYTHONUNBUFFERED=1\nEnvironment=WSL_DISTRO_NAME={distro}")
pathlib.Path(out).write_text(text)
PY
}

# systemd-analyze derives the unit type from the file name: the file must end in ".service".
# It exits 0 on a line it ignores ("path is not absolute, ignoring"): any remark naming the
# unit file counts as a rejection too.
verify_unit() {  # verify_unit UNIT_FILE
  local remarks
  remarks="$(systemd-analyze verify "$1" 2>&1)" || { printf '%s\n' "$remarks" >&2; fail "systemd-analyze rejected the unit (see above)"; }
  if printf '%s' "$remarks" | grep -qF "$1"; then
    printf '%s\n' "$remarks" >&2
    fail "systemd-analyze found problems in the unit (see above)"
  fi
}

if [ -n "$verify_dir" ]; then
  mkdir -p "$verify_dir"
  render_unit "$verify_dir/posed.service"
  verify_unit "$verify_dir/posed.service"
  say "unit verified: $verify_dir/posed.service"
  exit 0
fi

# 1. systemd must be PID 1 in this distro (WSL starts it only with [boot] systemd=true).
if ! grep -Eqs '^[[:space:]]*systemd[[:space:]]*=[[:space:]]*true' /etc/wsl.conf; then
  fail "systemd is not enabled for this WSL distro. Add to /etc/wsl.conf:
    [boot]
    systemd=true
then run 'wsl --shutdown' in Windows PowerShell and open the distro again."
fi
[ "$(ps -p 1 -o comm= 2>/dev/null)" = "systemd" ] || fail "PID 1 is not systemd yet: run 'wsl --shutdown' in Windows and reopen the distro."
[ "$(id -u)" -eq 0 ] || [ "$dry_run" -eq 1 ] || fail "run with sudo (it writes /etc/systemd/system and creates the service user)"

# 2. The virtualenv the unit runs.
"$root/scripts/_venv.sh"

# 3. A dedicated user, unless told to run as an existing one.
if ! id "$user" >/dev/null 2>&1; then
  [ "$dry_run" -eq 1 ] || useradd --system --home-dir /var/lib/posed --shell /usr/sbin/nologin "$user"
  say "created system user $user"
fi
for dir in "$inbox" "$outbox"; do
  mkdir -p "$dir"
  if [ "$dry_run" -eq 0 ] && ! runuser -u "$user" -- test -w "$dir"; then
    fail "user $user cannot write $dir. On /mnt/c the files belong to your WSL user: either install with
    --user $(logname 2>/dev/null || echo YOUR_WSL_USER), or mount drives with group access in /etc/wsl.conf:
    [automount]
    options = \"metadata,umask=007\""
  fi
done

# 4. Config and unit.
unit_dir="$(mktemp -d)"
unit_tmp="$unit_dir/posed.service"
trap 'rm -rf "$unit_dir"' EXIT
render_unit "$unit_tmp"
verify_unit "$unit_tmp"
if [ "$dry_run" -eq 1 ]; then cat "$unit_tmp"; exit 0; fi

mkdir -p "$(dirname "$config")"
if [ ! -f "$config" ]; then
  printf 'inbox:\n  path: "%s"\noutbox:\n  path: "%s"\n' "$inbox" "$outbox" > "$config"
  say "wrote $config"
fi
install -m 0644 "$unit_tmp" /etc/systemd/system/posed.service
systemctl daemon-reload
systemctl enable --now posed.service
say "installed and started: systemctl status posed; journalctl -u posed -f; $root/.venv/bin/posed status --outbox '$outbox'"

# 5. WSL ends an idle distro whose only processes are systemd services.
cat >&2 <<'TXT'
posed: keep WSL running while Windows is up. In %UserProfile%\.wslconfig on Windows:
    [wsl2]
    vmIdleTimeout=-1
    [general]
    instanceIdleTimeout=-1
  then 'wsl --shutdown'. Older WSL builds ignore instanceIdleTimeout: start the distro at logon
  from Task Scheduler instead: wsl.exe -d <distro> --exec sleep infinity (a process WSL counts as yours).
TXT
