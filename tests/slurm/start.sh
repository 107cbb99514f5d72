#!/usr/bin/env bash
# tests/slurm/start.sh - bring up sem's REAL single-node Slurm test cluster on localhost:
# munged + MariaDB + slurmdbd (accounting, so `sacct` works) + slurmctld + slurmd, without systemd.
# Installs the Debian packages it needs on first use. Run as root.
#
# Idempotent: daemons already running (per the PID files under $SEM_SLURM_BASE/run) are kept;
# a changed slurm.conf (other knobs) restarts slurmctld and slurmd. tests/slurm/stop.sh stops
# exactly what this script started.
#
# Knobs (environment, all optional):
#   SEM_SLURM_BASE=/tmp/sem-slurm    config, state, database, logs and PID files
#   SEM_SLURM_CPUS=8                 CPUs the node advertises (more than the real cores, so short
#                                    test jobs run side by side)
#   SEM_SLURM_MAX_ARRAY_SIZE=30      MaxArraySize (small, so tests can check array splitting;
#                                    benchmarks/bench_slurm.py restarts with 1001, Slurm's default,
#                                    for its 10,000-row submission, then restarts with the test value)
#   SEM_SLURM_MAX_JOB_COUNT=10000    MaxJobCount (Slurm's default; every array task counts against it,
#                                    and so does every ended job for MinJobAge seconds)
#   SEM_SLURM_MIN_JOB_AGE=300        MinJobAge: seconds an ended job stays in squeue/scontrol
#   SEM_SLURM_MEM_MB=<MemTotal>      RealMemory the node advertises
#   SEM_SLURM_TIMEOUT=90             seconds to wait for the node to become idle
#   SEM_SLURM_DB_PORT=6833           MariaDB port (bound to 127.0.0.1 only)
# Clients find the cluster through /etc/slurm/slurm.conf (a symlink to the generated file).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${SEM_SLURM_BASE:-/tmp/sem-slurm}
CPUS=${SEM_SLURM_CPUS:-8}
MAX_ARRAY_SIZE=${SEM_SLURM_MAX_ARRAY_SIZE:-30}
MAX_JOB_COUNT=${SEM_SLURM_MAX_JOB_COUNT:-10000}
MIN_JOB_AGE=${SEM_SLURM_MIN_JOB_AGE:-300}
TIMEOUT=${SEM_SLURM_TIMEOUT:-90}
DB_PORT=${SEM_SLURM_DB_PORT:-6833}
CLUSTER=semtest
NODE=$(uname -n); NODE=${NODE%%.*}     # slurmctld insists on the short hostname
MEM=${SEM_SLURM_MEM_MB:-$(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo)}
ETC=$BASE/etc RUN=$BASE/run LOG=$BASE/log STATE=$BASE/state DB=$BASE/db
export SLURM_CONF=$ETC/slurm.conf

t0=$(date +%s%N)
say()  { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf '[slurm start %3d.%01ds] %s\n' $((ms/1000)) $((ms%1000/100)) "$*"; }
fail() { echo "tests/slurm/start.sh: ERROR: $*" >&2; exit 1; }
die()  { # fail, with the last lines of the logs written during this start
  echo "tests/slurm/start.sh: ERROR: $*" >&2
  for f in "$LOG"/slurmctld.log "$LOG"/slurmd.log "$LOG"/slurmdbd.log "$LOG"/mariadb.log /var/log/munge/munged.log; do
    [ -s "$f" ] && [ "$f" -nt "$RUN/.started" ] && { echo "--- last lines of $f:" >&2; tail -n 15 "$f" >&2; }
  done
  echo "tests/slurm/start.sh: daemons already started are left running; stop them with tests/slurm/stop.sh" >&2
  exit 1; }
alive() { # alive PIDFILE COMM: PIDFILE names a live process whose comm is COMM
  local pid; [ -s "$1" ] || return 1; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]; }
waitfor() { # waitfor SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s
  local n=$(( $1 * 5 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out after $((n / 5)) s waiting for: $what"; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and starts daemons)"
# slurmd 22.05 always initialises its cgroup plugin
[ -e /sys/fs/cgroup/cgroup.controllers ] || [ -d /sys/fs/cgroup/memory ] || [ -d /sys/fs/cgroup/cpuset ] \
  || fail "/sys/fs/cgroup is not mounted: slurmd 22.05 refuses to start without it"
mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/ctld" "$STATE/d"; touch "$RUN/.started"

# ------------------------------------------------------------------------------ 1. packages
need=()
for c in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing: ${need[*]}"
  # keep the packages' maintainer scripts from starting daemons (this script starts them)
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_ok=1
  # other installers may hold the dpkg lock: wait for it rather than fail
  apt-get -o DPkg::Lock::Timeout=600 update -qq >"$LOG/apt.log" 2>&1 \
    && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >>"$LOG/apt.log" 2>&1 \
    || apt_ok=0
  [ $policy_created = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $apt_ok = 1 ] || { tail -20 "$LOG/apt.log" >&2; fail "apt-get install ${need[*]} failed (log: $LOG/apt.log)"; }
  say "packages installed"
fi

# ------------------------------------------------------------------------------ 2. config
render() { # render TEMPLATE: fill the @NAME@ placeholders
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@NODE@|$NODE|g" -e "s|@STATE@|$STATE|g" -e "s|@RUN@|$RUN|g" \
      -e "s|@LOG@|$LOG|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM@|$MEM|g" -e "s|@MAX_ARRAY_SIZE@|$MAX_ARRAY_SIZE|g" \
      -e "s|@MAX_JOB_COUNT@|$MAX_JOB_COUNT|g" -e "s|@MIN_JOB_AGE@|$MIN_JOB_AGE|g" \
      -e "s|@DB_PORT@|$DB_PORT|g" -e "s|@DB_PASS@|${DB_PASS:-}|g" "$1"; }
write_if_changed() { # write stdin to $1 with mode $2; succeed only if the content changed
  local tmp; tmp=$(mktemp "$1.XXXXXX"); cat > "$tmp"; chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$1"; return 0; }

# the accounting database password is made on first start and never leaves $BASE
[ -s "$BASE/db.pass" ] || { (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$BASE/db.pass"); }
DB_PASS=$(cat "$BASE/db.pass")
ACCOUNTING="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5"
conf_changed=0
render "$HERE/slurm.conf.in" | awk -v acct="$ACCOUNTING" '{ if ($0 == "@ACCOUNTING@") print acct; else print }' \
  | write_if_changed "$ETC/slurm.conf" 644 && conf_changed=1
render "$HERE/slurmdbd.conf.in" | write_if_changed "$ETC/slurmdbd.conf" 600 || true  # slurmdbd refuses a readable conf
mkdir -p /etc/slurm
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
  mv /etc/slurm/slurm.conf "/etc/slurm/slurm.conf.bak.$(date +%s)"
  say "moved the existing /etc/slurm/slurm.conf aside"
fi
ln -sfn "$ETC/slurm.conf" /etc/slurm/slurm.conf
echo "export SLURM_CONF=$ETC/slurm.conf" > "$BASE/env.sh"

# ------------------------------------------------------------------------------ 3. munge
if alive "$RUN/munged.pid" munged; then say "munged already running"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "a munged this script did not start answers on /run/munge: using it (stop.sh leaves it alone)"
else
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 700 /etc/munge /var/log/munge; chmod 600 /etc/munge/munge.key; chmod 755 /run/munge
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # --origin: a fresh container may have no resolvable hostname
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid --origin=127.0.0.1 || die "munged failed to start"
  cp /run/munge/munged.pid "$RUN/munged.pid"
  waitfor 10 "munge round-trip" sh -c 'munge -n | unmunge'
  say "munged started (pid $(cat "$RUN/munged.pid"))"
fi

# ------------------------------------------------------------------------------ 4. accounting
SOCK=$RUN/mysqld.sock
if alive "$RUN/mariadbd.pid" mariadbd; then say "mariadbd already running"
else
  if [ ! -d "$DB/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$DB" --user=root --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve --force --innodb-log-file-size=16M >"$LOG/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed (log: $LOG/mariadb-install.log)"
  fi
  setsid nohup mariadbd --no-defaults --datadir="$DB" --user=root --socket="$SOCK" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" \
    --innodb-log-file-size=16M --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
    </dev/null >/dev/null 2>&1 &
  waitfor 30 "mariadbd" mariadb-admin --no-defaults --socket="$SOCK" -uroot ping
  say "mariadbd started (pid $(cat "$RUN/mariadbd.pid"), 127.0.0.1:$DB_PORT)"
fi
# (re)applied on every start: the password file may be newer than the database
mariadb --no-defaults --socket="$SOCK" -uroot -e "
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" || die "creating the slurm database user failed"
if alive "$RUN/slurmdbd.pid" slurmdbd; then say "slurmdbd already running"
else
  slurmdbd || die "slurmdbd failed to start"
  waitfor 10 "slurmdbd pid file" alive "$RUN/slurmdbd.pid" slurmdbd
  waitfor 30 "slurmdbd answering (sacctmgr)" sacctmgr -n list cluster
  say "slurmdbd started (pid $(cat "$RUN/slurmdbd.pid"))"
fi

# ------------------------------------------------------------------------------ 5. slurmctld + slurmd
if [ $conf_changed = 1 ]; then   # CPUs, MaxArraySize, ... need a real restart
  for d in slurmd slurmctld; do
    if alive "$RUN/$d.pid" "$d"; then
      pid=$(cat "$RUN/$d.pid"); say "slurm.conf changed: restarting $d"
      kill -TERM "$pid"; for _ in $(seq 75); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    fi
  done
fi
if alive "$RUN/slurmctld.pid" slurmctld; then say "slurmctld already running"
else
  slurmctld || die "slurmctld failed to start"
  waitfor 10 "slurmctld pid file" alive "$RUN/slurmctld.pid" slurmctld
  say "slurmctld started (pid $(cat "$RUN/slurmctld.pid"))"
fi
waitfor 30 "slurmctld answering (scontrol ping)" sh -c 'scontrol ping | grep -q UP'
slurmd_t0=0
if alive "$RUN/slurmd.pid" slurmd; then say "slurmd already running"
else
  slurmd_t0=$(date +%s)
  slurmd -N "$NODE" || die "slurmd failed to start"
  waitfor 10 "slurmd pid file" alive "$RUN/slurmd.pid" slurmd
  say "slurmd started (pid $(cat "$RUN/slurmd.pid"))"
fi

# ------------------------------------------------------------------------------ 6. wait for the node
# After a restart sinfo reports the saved state (idle) before slurmd re-registers: also require a
# SlurmdStartTime no older than the slurmd this script launched.
node_ok() {
  case "$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null)" in idle|mix|alloc) ;; *) return 1;; esac
  local t; t=$(scontrol -o show node "$NODE" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2)
  [ -n "$t" ] && [ "$t" != None ] && [ "$(date -d "$t" +%s)" -ge $(( slurmd_t0 - 1 )) ]; }
resumed=0
for _ in $(seq $(( TIMEOUT * 5 ))); do
  node_ok && break
  case "$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)" in
    drain*|down*|fail*) [ $resumed = 0 ] && { scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; resumed=1; };;
  esac
  sleep 0.2
done
node_ok || die "node $NODE not idle after ${TIMEOUT} s (state: '$(sinfo -h -N -n "$NODE" -o '%t %E' 2>/dev/null)')"
say "cluster ready: $(sinfo -h -o '%P %a %D %t %N'), MaxArraySize=$MAX_ARRAY_SIZE, MaxJobCount=$MAX_JOB_COUNT, CPUs=$CPUS (SLURM_CONF=$SLURM_CONF)"
