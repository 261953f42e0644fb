#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_cluster.sh started: cancel its jobs, then stop
# slurmd, slurmctld and munged by the pids in the state dir. Safe to run when nothing is up.
#
#   bash tests/slurm/stop_cluster.sh            # keeps the state dir (logs) for inspection
#   CAMA_SLURM_PURGE=1 bash tests/slurm/stop_cluster.sh   # also deletes it
set -uo pipefail

STATE="${CAMA_SLURM_STATE:-/tmp/cama-slurm}"
log() { echo "stop_cluster.sh: $*" >&2; }

if [[ ! -d "$STATE" ]]; then
    log "no state dir $STATE: nothing to stop"
    exit 0
fi
export SLURM_CONF="$STATE/slurm.conf"

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() { # name pidfile
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $name ($pid)"; rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    log "killed $name ($pid) with SIGKILL"
    rm -f "$pidfile"
}

# Jobs first, so that no job steps outlive slurmd.
if alive "$STATE/run/slurmctld.pid"; then
    scancel --full --quiet --partition=debug 2>/dev/null || true
    for _ in $(seq 20); do
        [[ -z "$(squeue -h -t running,completing 2>/dev/null)" ]] && break
        sleep 0.5
    done
fi
for f in "$STATE"/run/slurmd-*.pid "$STATE/run/slurmd.pid"; do
    [[ -e "$f" ]] && stop "slurmd $(basename "$f" .pid)" "$f"
done
stop slurmctld "$STATE/run/slurmctld.pid"
stop munged "$STATE/munge/munged.pid"

# Leftover slurmstepd processes of this cluster (their jobs ran under our spool dir).
for pid in $(pgrep -x slurmstepd 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/environ" 2>/dev/null | grep -q "SLURM_CONF=$STATE/slurm.conf"; then
        kill -9 "$pid" 2>/dev/null && log "killed leftover slurmstepd $pid"
    fi
done

# Emulated node names that start_cluster.sh added to /etc/hosts (CAMA_SLURM_NODES > 1).
# (Rewritten in place, not renamed over: /etc/hosts is often a bind mount.)
if grep -q ' # cama test cluster$' /etc/hosts 2>/dev/null; then
    kept="$(grep -v ' # cama test cluster$' /etc/hosts)"
    printf '%s\n' "$kept" >/etc/hosts
fi

# Our symlinks in /etc/slurm go; a site's own slurm.conf is never touched.
for f in slurm.conf gres.conf; do
    if [[ -L /etc/slurm/$f && "$(readlink "/etc/slurm/$f")" == "$STATE/"* ]]; then
        rm -f "/etc/slurm/$f"
    fi
done

if [[ "${CAMA_SLURM_PURGE:-0}" == 1 ]]; then
    rm -rf "$STATE"
    log "removed $STATE"
else
    log "logs kept in $STATE/log"
fi
