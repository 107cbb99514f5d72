#!/usr/bin/env bash
# tests/slurm/stop.sh - stop exactly the daemons tests/slurm/start.sh started (by the PID files in
# $SEM_SLURM_BASE/run; a PID is signalled only if /proc/PID/comm still names the expected daemon),
# after cancelling the jobs still queued. A munged that start.sh found running is left alone.
#   --purge   also delete the cluster's state, database and logs (job ids restart at 1)
set -uo pipefail
BASE=${SEM_SLURM_BASE:-/tmp/sem-slurm}
RUN=$BASE/run
export SLURM_CONF=$BASE/etc/slurm.conf
rc=0

alive() { local pid; [ -s "$1" ] || return 1; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]; }

stop() { # stop NAME...: SIGTERM each $RUN/NAME.pid, wait up to 15 s for all, then SIGKILL
  local name pid pids=() names=()
  for name in "$@"; do
    if alive "$RUN/$name.pid" "$name"; then
      pid=$(cat "$RUN/$name.pid"); kill -TERM "$pid" 2>/dev/null; pids+=("$pid"); names+=("$name")
    else rm -f "$RUN/$name.pid"; fi
  done
  [ ${#pids[@]} = 0 ] && return 0
  for _ in $(seq 75); do
    local any=0; for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && any=1; done
    [ $any = 0 ] && break; sleep 0.2
  done
  for i in "${!pids[@]}"; do
    pid=${pids[$i]} name=${names[$i]}
    if [ -d "/proc/$pid" ]; then
      echo "tests/slurm/stop.sh: $name ($pid) ignored SIGTERM, sending SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null; sleep 0.5
    fi
    if [ -d "/proc/$pid" ]; then echo "tests/slurm/stop.sh: could not stop $name ($pid)" >&2; rc=1
    else rm -f "$RUN/$name.pid"; echo "tests/slurm/stop.sh: stopped $name ($pid)"; fi
  done
}

# cancel what is still queued or running, so that no job outlives slurmd
if alive "$RUN/slurmctld.pid" slurmctld; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    echo "tests/slurm/stop.sh: cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h -t R,CG,PD -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

stop slurmd slurmctld     # three waves: slurmctld flushes job records to slurmdbd,
stop slurmdbd             # slurmdbd writes them to MariaDB
stop mariadbd munged

# report (never kill) job steps that survived, e.g. when slurmd was already gone
for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] && echo "tests/slurm/stop.sh: WARNING: slurmstepd ${p#/proc/} still running" >&2
done

if [ "${1:-}" = --purge ]; then
  rm -rf "$BASE/state" "$BASE/db" "$BASE/log" "$BASE/run" "$BASE/db.pass" && echo "tests/slurm/stop.sh: purged state, database and logs"
fi
exit $rc
