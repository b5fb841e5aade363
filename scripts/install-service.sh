#!/usr/bin/env bash
# Install posed as a systemd service inside WSL2.
#   sudo ./scripts/install-service.sh --inbox /mnt/c/posed/inbox --outbox /mnt/c/posed/outbox [--user NAME]
#   sudo ./scripts/install-service.sh --queue redis://USER:PASS@HOST:6379/0 --input-root /mnt/share/uploads --outbox DIR
#   ./scripts/install-service.sh ... --verify-only OUTDIR   (no root, no changes)
# Checks that systemd runs in this distro, writes /etc/posed/posed.yaml, installs
# systemd/posed.service with your paths, verifies it, enables and starts it, and prints the
# .wslconfig settings that keep WSL from idle-terminating a distro that only runs services.
# --queue (BullMQ on Redis, docs/queue.md): the config names the queue (its password stays out of
# the unit and of ps), --input-root (repeatable) bounds the paths jobs may name, and the unit's
# network sandbox lets the daemon reach that Redis host and nothing else.
# --verify-only writes OUTDIR/posed.service and OUTDIR/posed.yaml (mode 0600) and runs the same checks only.
# An existing config that differs from these options is never silently kept beside a unit
# rewritten for them: the installer shows the difference (passwords hidden) and stops;
# --replace-config replaces it (the old one is kept as posed.yaml.bak).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
inbox="" outbox="" user="posed" config="/etc/posed/posed.yaml" dry_run=0 verify_dir="" queue=""
input_roots=() replace_config=0

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --inbox) inbox="$2"; shift 2 ;;
    --outbox) outbox="$2"; shift 2 ;;
    --queue) queue="$2"; shift 2 ;;
    --input-root) input_roots+=("$2"); shift 2 ;;
    --user) user="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --verify-only) verify_dir="$2"; shift 2 ;;
    --replace-config) replace_config=1; shift ;;
    *) usage ;;
  esac
done
[ -n "$outbox" ] || usage
# An empty User= runs the service as root; a name systemd or useradd would read otherwise is refused too.
[[ "$user" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || { echo "posed: --user needs a user name (lower-case letters, digits, _ or -), got '$user'" >&2; exit 2; }
if [ -n "$queue" ]; then
  [ -z "$inbox" ] || { echo "posed: --queue takes jobs from Redis: drop --inbox" >&2; exit 2; }
  [ "${#input_roots[@]}" -gt 0 ] || { echo "posed: --queue needs --input-root DIR: the folder(s) job inputs must lie in (job data names paths; posed refuses others)" >&2; exit 2; }
else
  [ -n "$inbox" ] || usage
  [ "${#input_roots[@]}" -eq 0 ] || { echo "posed: --input-root is for --queue; the folder intake reads its inbox" >&2; exit 2; }
fi
for dir in ${inbox:+"$inbox"} "$outbox" ${input_roots[@]+"${input_roots[@]}"}; do
  case "$dir" in /*) ;; *) echo "posed: --inbox, --outbox and --input-root must be absolute paths" >&2; exit 2 ;; esac
done

say() { printf 'posed: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

# The unit and the config with the paths filled in (done in Python: paths are data, not sed code).
# Each unit path is quoted for systemd: backslash and double quote escaped, "%" doubled so it is no
# specifier. ReadWritePaths gets the "-" prefix: at boot /mnt/c may not be mounted yet, and without
# it systemd refuses to start the service; the daemon itself waits for a missing inbox. The config
# is loaded with posed's own loader before anything is installed, so a bad URL fails here.
render() {  # render UNIT_FILE CONFIG_FILE
  WSL_DISTRO_NAME="${WSL_DISTRO_NAME:-}" POSED_QUEUE_URL="$queue" "$root/.venv/bin/python" - "$root" "$inbox" "$outbox" "$user" "$config" "$1" "$2" \
    ${input_roots[@]+"${input_roots[@]}"} <<'PY'
import ipaddress, os, pathlib, socket, sys, urllib.parse
import yaml
root, inbox, outbox, user, config, unit_out, config_out, *input_roots = sys.argv[1:]
queue = os.environ["POSED_QUEUE_URL"]  # not in argv: it may hold the Redis password

def quoted(path, prefix=""):
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{prefix}{escaped}"'

def redis_addresses(url):
    """IPAddressAllow= for the Redis host: its addresses now (re-run the installer if they change)."""
    host = urllib.parse.urlsplit(url).hostname or "localhost"
    port = urllib.parse.urlsplit(url).port or 6379
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError as exc:
        sys.exit(f"posed: cannot resolve the Redis host {host!r} ({exc}); the unit's firewall needs its address")
    return " ".join("localhost" if ipaddress.ip_address(a).is_loopback else a for a in sorted(found))

settings = {"outbox": {"path": outbox}}
if queue:
    settings["intake"] = {"kind": "bullmq", "url": queue, "input_roots": input_roots}
else:
    settings["inbox"] = {"path": inbox}
# 0600 from its creation: in queue mode it holds the Redis password (installed as 0640 below).
fd = os.open(config_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.fchmod(fd, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    handle.write(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
sys.path.insert(0, root)
from daemon.config import load_config
from daemon.errors import ConfigError
try:
    load_config(config_out)
except ConfigError as exc:
    sys.exit(f"posed: the config would not load: {exc}")

text = pathlib.Path(root, "systemd", "posed.service").read_text()
text = text.replace("/opt/posed/.venv/bin/posed", f"{root}/.venv/bin/posed")
text = text.replace("--config /etc/posed/posed.yaml", f"--config {quoted(config)}")
writable = [quoted(inbox, "-")] if inbox else []
text = text.replace("ReadWritePaths=-/mnt/c/posed/inbox -/mnt/c/posed/outbox", f"ReadWritePaths={' '.join(writable + [quoted(outbox, '-')])}")
text = text.replace("User=posed", f"User={user}").replace("Group=posed", f"Group={user}")
if queue:  # Redis over TCP, to that host only
    text = text.replace("RestrictAddressFamilies=AF_UNIX\n", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n")
    text = text.replace("IPAddressDeny=any\n", f"IPAddressDeny=any\nIPAddressAllow={redis_addresses(queue)}\n")
distro = os.environ.get("WSL_DISTRO_NAME")  # systemd services do not inherit it
if distro:
    text = text.replace("Environment=PYTHONUNBUFFERED=1", f"Environment=PYTHONUNBUFFERED=1\nEnvironment=WSL_DISTRO_NAME={distro}")
pathlib.Path(unit_out).write_text(text)
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

# config_differs EXISTING NEW: 0 (and the difference on stderr, passwords hidden) if they differ.
config_differs() {
  "$root/.venv/bin/python" - "$1" "$2" <<'PY'
import difflib, re, sys
def shown(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    return re.sub(r"(rediss?://[^:@/\s]*:)[^@\s]*@", r"\1***@", text).splitlines(keepends=True)
old, new = shown(sys.argv[1]), shown(sys.argv[2])
if old == new and open(sys.argv[1], "rb").read() == open(sys.argv[2], "rb").read():
    sys.exit(1)
sys.stderr.writelines(difflib.unified_diff(old, new, sys.argv[1], "these options"))
PY
}

# place_config NEW TARGET MODE: a first config, the same one again, or a refusal showing the difference.
place_config() {
  local new="$1" target="$2" mode="$3"
  if [ ! -f "$target" ]; then
    install -m "$mode" ${4:+-g "$4"} "$new" "$target"
    say "wrote $target (mode $mode)"
  elif ! config_differs "$target" "$new"; then
    say "kept $target: it already holds these options"
  elif [ "$replace_config" -eq 1 ]; then
    cp -p "$target" "$target.bak"
    install -m "$mode" ${4:+-g "$4"} "$new" "$target"
    say "replaced $target (the old one is $target.bak)"
  else
    fail "the existing $target differs from these options (above); the unit would name one set of paths and the config another. Re-run with --replace-config to replace it, or with the options it holds"
  fi
}

if [ -n "$verify_dir" ]; then
  mkdir -p "$verify_dir"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  render "$work/posed.service" "$work/posed.yaml"
  verify_unit "$work/posed.service"
  place_config "$work/posed.yaml" "$verify_dir/posed.yaml" 0600
  cp "$work/posed.service" "$verify_dir/posed.service"
  say "unit verified: $verify_dir/posed.service (config: $verify_dir/posed.yaml)"
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
for dir in ${inbox:+"$inbox"} "$outbox"; do
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
render "$unit_tmp" "$unit_dir/posed.yaml"
verify_unit "$unit_tmp"
if [ "$dry_run" -eq 1 ]; then cat "$unit_tmp"; exit 0; fi

mkdir -p "$(dirname "$config")"
# Readable by the service's group only: in queue mode it holds the Redis password.
place_config "$unit_dir/posed.yaml" "$config" 0640 "$user"
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
