"""The launcher: a stage's training module, started three ways, and stopped with its launcher.

- **one process**: ``python -m cama.train.worker <module> ...`` (the training module fills in
  the rank variables itself);
- **N processes on this node**: ``torchrun --standalone --nproc_per_node N`` (gloo on CPU,
  NCCL on GPU; the training module picks the backend by what the process can see);
- **several nodes inside a Slurm allocation** (``SLURM_JOB_ID`` set and ``SLURM_NNODES`` > 1):
  ``srun --ntasks-per-node=1`` starts one torchrun per node, each with
  ``--nnodes $SLURM_NNODES --node_rank $SLURM_NODEID`` and a rendezvous at the first host of
  ``scontrol show hostnames $SLURM_JOB_NODELIST``. ``$SLURM_NODEID`` differs per task, so
  it is expanded by a shell on each node, not here.

torchrun is spelled ``python -m torch.distributed.run`` (the same program) so the job uses
this interpreter's environment on every node, whatever ``PATH`` holds there.

**The launcher owns its children.** torchrun starts each worker in a session of its own, so
a ``kill -9`` of the job's process group (what Snakemake, a user's Ctrl-C or a scheduler
sends) would leave the workers training, writing outputs after the job is gone. Instead:

- the launcher stays the parent of torchrun (or srun, or the one worker) and forwards
  SIGTERM, SIGINT and SIGHUP to it;
- that child gets a parent-death signal (``PR_SET_PDEATHSIG``, SIGTERM): if the launcher is
  killed, even by SIGKILL, the kernel sends it SIGTERM, and torchrun stops its workers;
- every worker runs under ``cama.train.worker``, which sets its own parent-death signal
  (SIGKILL) before importing anything heavy: if torchrun itself is killed, the kernel kills
  the workers. A worker whose launcher is already gone when it starts exits at once.

``tests/train/test_kill.py`` kills the launcher's process group with SIGKILL mid-training and
finds no training process left a few seconds later.

Command line (``cama pretrain`` is this, for ``cama.pretrain.train``)::

    cama pretrain --gpus 0 --tasks 2 --threads 2 -- --blend results/shards/blend.json ...

everything after ``--`` goes to the training module.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

WORKER = "cama.train.worker"
DEFAULT_PORT = 29500
LAUNCHER = "CAMA_LAUNCHER"  # "<host>:<pid>" of the launcher, for the workers: exit at start if it is gone
_PR_SET_PDEATHSIG = 1


def num_nodes(env: Mapping[str, str]) -> int:
    """Nodes of the Slurm allocation this runs in; 1 outside Slurm."""
    if "SLURM_JOB_ID" not in env:
        return 1
    return int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)


def processes_per_node(gpus: int, tasks: int) -> int:
    """One process per GPU; on CPU, the ``tasks`` the rule asked for (at least 1)."""
    return gpus if gpus > 0 else max(tasks, 1)


def thread_env(threads: int, nproc_per_node: int) -> dict[str, str]:
    """Share the node's cores among its processes (torchrun would otherwise set 1)."""
    return {"OMP_NUM_THREADS": str(max(threads // max(nproc_per_node, 1), 1))}


def torchrun(python: str = sys.executable) -> list[str]:
    return [python, "-m", "torch.distributed.run"]


def single_command(module: str, train_args: Sequence[str], python: str = sys.executable) -> list[str]:
    """One process, no torchrun."""
    return [python, "-m", WORKER, module, *train_args]


def local_command(
    module: str, train_args: Sequence[str], nproc_per_node: int, python: str = sys.executable
) -> list[str]:
    """N processes on this node; ``--standalone`` picks a free rendezvous port itself."""
    return [
        *torchrun(python),
        "--standalone",
        "--nnodes=1",
        f"--nproc_per_node={nproc_per_node}",
        "-m",
        WORKER,
        module,
        *train_args,
    ]


def slurm_command(
    module: str,
    train_args: Sequence[str],
    nproc_per_node: int,
    env: Mapping[str, str],
    master_host: str,
    port: int = DEFAULT_PORT,
    python: str = sys.executable,
) -> list[str]:
    """srun, one task per node, each running torchrun with a rendezvous at ``master_host``."""
    nnodes = num_nodes(env)
    inner = [
        *torchrun(python),
        f"--nnodes={nnodes}",
        f"--nproc_per_node={nproc_per_node}",
        "--node_rank=$SLURM_NODEID",  # expanded on each node by its own shell
        "--rdzv_backend=c10d",
        f"--rdzv_id={env.get('SLURM_JOB_ID', 'cama')}",
        f"--rdzv_endpoint={master_host}:{port}",
        "-m",
        WORKER,
        module,
        *train_args,
    ]
    script = " ".join(a if a == "--node_rank=$SLURM_NODEID" else shlex.quote(a) for a in inner)
    return [
        "srun",
        f"--nodes={nnodes}",
        f"--ntasks={nnodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",  # one node failing stops the others instead of hanging them
        "bash",
        "-c",
        "exec " + script,
    ]


def first_host(env: Mapping[str, str], run=subprocess.run) -> str:
    """The first host of the allocation, from ``scontrol show hostnames $SLURM_JOB_NODELIST``."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise RuntimeError("SLURM_JOB_NODELIST is not set: not inside a Slurm allocation")
    out = run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def command(
    module: str,
    train_args: Sequence[str],
    *,
    nproc_per_node: int,
    env: Mapping[str, str],
    master_host: str | None = None,
    port: int = DEFAULT_PORT,
    python: str = sys.executable,
) -> list[str]:
    """The argv for this environment: one process, N on this node, or a Slurm multi-node job."""
    if num_nodes(env) > 1:
        return slurm_command(module, train_args, nproc_per_node, env, master_host or first_host(env), port, python)
    if nproc_per_node > 1:
        return local_command(module, train_args, nproc_per_node, python)
    return single_command(module, train_args, python)


# ----------------------------------------------------------------------------- owning the children


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _child_setup(launcher_pid: int):
    def setup() -> None:  # in the child, between fork and exec: async-signal-safe calls only
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != launcher_pid:  # the launcher died before the line above
            os._exit(1)

    return setup


def run(cmd: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``cmd`` as this process's child, which dies with it; forward termination signals."""
    env = {**env, LAUNCHER: f"{socket.gethostname()}:{os.getpid()}"}
    proc = subprocess.Popen(list(cmd), env=env, preexec_fn=_child_setup(os.getpid()))

    def forward(signum, _frame):
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = proc.wait()
    return status if status >= 0 else 128 - status  # killed by signal N: 128 + N, as a shell says


def main(argv: Sequence[str] | None = None, *, module: str, prog: str = "cama.train.launch") -> int:
    """Parse ``[launcher options] -- [training options]`` and run ``module`` under the launcher."""
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog=prog, description="Start the training processes: " + __doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(own)
    nproc = processes_per_node(args.gpus, args.tasks)
    cmd = command(module, train_args, nproc_per_node=nproc, env=os.environ, port=args.port)
    env = dict(os.environ)
    if args.threads:
        env.update(thread_env(args.threads, nproc))
    print("launch:", shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    return run(cmd, env)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The launcher's own options (before ``--``)."""
    p.add_argument("--gpus", type=int, default=0, help="GPUs per node (0: CPU)")
    p.add_argument("--tasks", type=int, default=1, help="processes per node on CPU")
    p.add_argument("--threads", type=int, default=0, help="cores per node to share among processes")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="rendezvous port (multi-node)")
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")


def add_subcommand_arguments(parser: argparse.ArgumentParser, module: str) -> None:
    """A stage's ``cama <stage>`` command: the launcher's options, then ``--`` and the module's."""
    add_arguments(parser)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help=f"-- then the options of {module}")


def run_subcommand(args: argparse.Namespace, *, module: str, prog: str) -> int:
    """Run ``cama <stage>`` (parsed by ``add_subcommand_arguments``) through ``main``."""
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    own = ["--gpus", str(args.gpus), "--tasks", str(args.tasks), "--threads", str(args.threads),
           "--port", str(args.port)] + (["--dry-run"] if args.dry_run else [])  # fmt: skip
    return main([*own, "--", *train_args], module=module, prog=prog)
