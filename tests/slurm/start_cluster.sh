#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for tests/slurm and for trying profiles/slurm.
#
#   sudo bash tests/slurm/start_cluster.sh          # prints the state dir and `export SLURM_CONF=...`
#   sudo bash tests/slurm/stop_cluster.sh
#
# What it does (idempotent: running it again while the cluster is up changes nothing):
#   1. installs munge and slurm-wlm from Debian packages (apt-get) if they are missing;
#   2. checks the munge key (creates one at the default path if there is none);
#   3. writes slurm.conf for this machine: its short hostname, CPUs from nproc, RealMemory a bit
#      under MemTotal, two device-less "gpu" GRES (so that `gpu:` requests are accepted; jobs
#      see no CUDA and must fall back to CPU), MinJobAge=300 so the executor plugin's
#      `squeue` status checks see finished jobs (there is no accounting database: see README);
#   4. starts munged, slurmctld and slurmd directly (no systemd), and waits until `sinfo`
#      shows the node idle.
#
# Everything it writes lives under the state dir ($CAMA_SLURM_STATE, default /tmp/cama-slurm):
# slurm.conf, gres.conf, daemon logs, pid files, spool and state dirs, the munge socket.
# Outside it, only: the packages, the munge key (default /etc/munge/munge.key) and a symlink
# /etc/slurm/slurm.conf -> $STATE/slurm.conf (made only when no slurm.conf is there, so that
# plain `sinfo`/`sbatch` find the cluster; otherwise export SLURM_CONF as printed).
#
# Environment:
#   CAMA_SLURM_STATE    state dir (default /tmp/cama-slurm)
#   CAMA_MUNGE_KEY      munge key to use. If you set it, the file must exist (a real cluster
#                       shares one key on all nodes: this script never invents one for you).
#                       Unset: /etc/munge/munge.key, created if missing.
#   CAMA_SLURM_GPUS     device-less GPUs the node advertises (default 2; 0 for none)
#   CAMA_SLURM_TIMEOUT  seconds to wait for the node to become idle (default 60)
#   CAMA_SLURM_NODES    1 (default): one node named after this host. N > 1: N emulated nodes
#                       cama-n1..cama-nN, one slurmd each (slurmd -N) on ports 17001.., all on this
#                       host, each with this host's CPUs and 1/N of its memory; their names are added
#                       to /etc/hosts as 127.0.0.1. For testing multi-node launchers (srun + torchrun).
set -euo pipefail

STATE="${CAMA_SLURM_STATE:-/tmp/cama-slurm}"
GPUS="${CAMA_SLURM_GPUS:-2}"
TIMEOUT="${CAMA_SLURM_TIMEOUT:-60}"
NODES="${CAMA_SLURM_NODES:-1}"

die() {
    echo "start_cluster.sh: ERROR: $*" >&2
    exit 1
}
log() { echo "start_cluster.sh: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts munged/slurmctld/slurmd as root). Try: sudo bash $0"

# 1. packages -------------------------------------------------------------------------------
missing=()
command -v munged >/dev/null || missing+=(munge)
{ command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; } ||
    missing+=(slurm-wlm)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install munge and slurm-wlm (slurmctld, slurmd, client tools) with your package manager"
    log "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed: no package mirror reachable? Install munge and slurm-wlm by hand"
    apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed (see above)"
fi

# 2. munge key ------------------------------------------------------------------------------
if [[ -n "${CAMA_MUNGE_KEY:-}" ]]; then
    KEY="$CAMA_MUNGE_KEY"
    [[ -s "$KEY" ]] || die "munge key $KEY (from CAMA_MUNGE_KEY) is missing or empty.
  Every node of a cluster must share the same key, so this script will not invent one at a path you chose.
  Fix: copy your cluster's key there (owner munge, mode 0400), or create a new one for a single-node cluster:
      mungekey --create --keyfile $KEY && chown munge:munge $KEY && chmod 0400 $KEY
  or unset CAMA_MUNGE_KEY to use /etc/munge/munge.key (created if missing)."
else
    KEY=/etc/munge/munge.key
    if [[ ! -s "$KEY" ]]; then
        log "creating munge key $KEY"
        install -d -o munge -g munge -m 0700 /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile "$KEY" --force
        else
            dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
        fi
    fi
fi
chown munge:munge "$KEY" 2>/dev/null || true
chmod 0400 "$KEY" 2>/dev/null || true

# 3. configuration --------------------------------------------------------------------------
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
REAL_MB=$((MEM_MB * 90 / 100)) # a bit under the machine's: slurmd drains a node that has less
getent hosts "$HOST" >/dev/null || die "hostname $HOST does not resolve: add '127.0.0.1 $HOST' to /etc/hosts"

mkdir -p "$STATE"/{log,run,ctld,spool}
install -d -o munge -g munge -m 0755 "$STATE/munge"
SOCKET="$STATE/munge/munge.socket"
CONF="$STATE/slurm.conf"

# Fake GPUs: Slurm wants a character device per GPU, so each is a copy of /dev/null (1,3).
# Slurm counts and allocates them (sets CUDA_VISIBLE_DEVICES); there is no CUDA behind them.
if ((NODES > 1)); then
    NAMES=()
    for ((i = 1; i <= NODES; i++)); do NAMES+=("cama-n$i"); done
    for n in "${NAMES[@]}"; do
        grep -qE "^127\.0\.0\.1[[:space:]]+$n\b" /etc/hosts || echo "127.0.0.1 $n # cama test cluster" >>/etc/hosts
    done
else
    NAMES=("$HOST")
fi
NODELIST="$(IFS=,; echo "${NAMES[*]}")"

gres_line=""
: >"$STATE/gres.conf"
if ((GPUS > 0)); then
    mkdir -p "$STATE/dev"
    for ((i = 0; i < GPUS; i++)); do
        [[ -c "$STATE/dev/fakegpu$i" ]] || mknod "$STATE/dev/fakegpu$i" c 1 3 2>/dev/null || break
    done
    if [[ -c "$STATE/dev/fakegpu$((GPUS - 1))" ]]; then
        gres_line="Gres=gpu:$GPUS"
        for n in "${NAMES[@]}"; do
            echo "NodeName=$n Name=gpu File=$STATE/dev/fakegpu[0-$((GPUS - 1))]" >>"$STATE/gres.conf"
        done
    else
        log "WARNING: cannot mknod fake GPU devices under $STATE/dev (nodev mount?): the node gets no GPUs"
        GPUS=0
    fi
fi

new_conf="$(
    cat <<EOF
# Written by tests/slurm/start_cluster.sh: a one-node cluster on $HOST. Do not edit; rerun the script.
ClusterName=cama
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SchedulerType=sched/backfill
# Refuse at submission (sbatch fails) a job no node of the partition can ever run, instead of
# leaving it pending forever with Reason=PartitionConfig.
EnforcePartLimits=ALL
ReturnToService=2
# No accounting database: the executor plugin polls squeue, which keeps finished jobs for MinJobAge.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
$(
        if ((NODES > 1)); then
            for ((i = 1; i <= NODES; i++)); do
                echo "NodeName=cama-n$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$CPUS RealMemory=$((REAL_MB / NODES)) $gres_line State=UNKNOWN"
            done
        else
            echo "NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB $gres_line State=UNKNOWN"
        fi
    )
PartitionName=debug Nodes=$NODELIST Default=YES MaxTime=INFINITE State=UP
EOF
)"
if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
    echo "$new_conf" >"$CONF"
    conf_changed=1
else
    conf_changed=0
fi
export SLURM_CONF="$CONF"

# Let plain `sinfo`, `sbatch`, ... find this cluster without SLURM_CONF, unless a site config is there.
if [[ -L /etc/slurm/slurm.conf || ! -e /etc/slurm/slurm.conf ]]; then
    mkdir -p /etc/slurm
    ln -sfn "$CONF" /etc/slurm/slurm.conf
    ln -sfn "$STATE/gres.conf" /etc/slurm/gres.conf
fi

# 4. daemons --------------------------------------------------------------------------------
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! alive "$STATE/munge/munged.pid"; then
    log "starting munged"
    rm -f "$SOCKET" "$SOCKET.lock"
    # munged refuses to run as root; it drops to the munge user with runuser.
    runuser -u munge -- munged --key-file="$KEY" --socket="$SOCKET" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed" ||
        die "munged did not start; its log: $STATE/munge/munged.log
$(tail -5 "$STATE/munge/munged.log" 2>/dev/null)"
fi
for _ in $(seq 50); do [[ -S "$SOCKET" ]] && break; sleep 0.1; done
munge -S "$SOCKET" -n </dev/null | unmunge -S "$SOCKET" >/dev/null ||
    die "munge does not work (munge -n | unmunge failed); see $STATE/munge/munged.log. Is the key $KEY readable by the munge user?"

if ((conf_changed)); then
    restarted=0
    for f in "$STATE"/run/slurmd-*.pid "$STATE/run/slurmctld.pid"; do
        if alive "$f"; then kill "$(cat "$f")"; restarted=1; fi
    done
    ((restarted)) && { log "slurm.conf changed: restarted slurmctld and slurmd"; sleep 2; }
    rm -f "$STATE"/run/slurmd-*.pid
fi
if ! alive "$STATE/run/slurmctld.pid"; then
    log "starting slurmctld"
    slurmctld -f "$CONF" || die "slurmctld did not start; see $STATE/log/slurmctld.log:
$(tail -5 "$STATE/log/slurmctld.log" 2>/dev/null)"
fi
for n in "${NAMES[@]}"; do
    alive "$STATE/run/slurmd-$n.pid" && continue
    log "starting slurmd for node $n"
    mkdir -p "$STATE/spool/$n"
    if ((NODES > 1)); then node_arg=(-N "$n"); else node_arg=(); fi
    slurmd -f "$CONF" "${node_arg[@]}" || die "slurmd did not start; see $STATE/log/slurmd-$n.log:
$(tail -5 "$STATE/log/slurmd-$n.log" 2>/dev/null)"
done

# Ready when every node is up (idle, or already running jobs).
ready() {
    local st
    [[ -n "$1" ]] || return 1
    for st in ${1//,/ }; do [[ "$st" == idle || "$st" == mixed || "$st" == allocated ]] || return 1; done
}
state=""
for _ in $(seq "$TIMEOUT"); do
    # the distinct states of the partition's nodes, e.g. "idle" or "idle,drained"
    state="$(sinfo -h -p debug -o %T 2>/dev/null | sort -u | paste -sd, - || true)"
    ready "$state" && break
    # a node that was drained (e.g. by an earlier run's kill) is put back, once
    if [[ "$state" == *drain* || "$state" == *down* ]] && [[ -z "${resumed:-}" ]]; then
        scontrol update nodename="$NODELIST" state=resume >/dev/null 2>&1 || true
        resumed=1
    fi
    # a node whose registration does not match slurm.conf will not fix itself
    [[ "$state" == *inval* ]] && break
    sleep 1
done
ready "$state" ||
    die "node(s) $NODELIST '${state:-not reported}' after ${TIMEOUT}s; see $STATE/log/slurmctld.log and $STATE/log/slurmd-*.log:
$(scontrol show node "$NODELIST" 2>&1 | grep -iE 'NodeName|State|Reason' || true)"

log "cluster up: node(s) $NODELIST $state, $CPUS CPUs and $((REAL_MB / NODES)) MB each, $GPUS device-less GPUs each, partition debug"
echo "CAMA_SLURM_STATE=$STATE"
echo "export SLURM_CONF=$CONF"
