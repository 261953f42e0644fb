"""The launcher: one training script, started three ways. Pure functions from env to argv.

- **one process**: ``python -m cama.pretrain.train ...`` (the training script fills in the
  rank variables itself);
- **N processes on this node**: ``torchrun --standalone --nproc_per_node N`` (gloo on CPU,
  NCCL on GPU; the training script picks the backend by what the process can see);
- **several nodes inside a Slurm allocation** (``SLURM_JOB_ID`` set and ``SLURM_NNODES`` > 1):
  ``srun --ntasks-per-node=1`` starts one torchrun per node, each with
  ``--nnodes $SLURM_NNODES --node_rank $SLURM_NODEID`` and a rendezvous at the first host of
  ``scontrol show hostnames $SLURM_JOB_NODELIST``. ``$SLURM_NODEID`` differs per task, so
  it is expanded by a shell on each node, not here.

torchrun is spelled ``python -m torch.distributed.run`` (the same program) so the job uses
this interpreter's environment on every node, whatever ``PATH`` holds there.

Command line (what the ``pretrain`` rule runs)::

    python -m cama.pretrain.launch --nproc-per-node 2 -- --blend results/shards/blend.json ...

everything after ``--`` goes to ``cama.pretrain.train``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

TRAIN_MODULE = "cama.pretrain.train"
DEFAULT_PORT = 29500


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


def single_command(train_args: Sequence[str], python: str = sys.executable) -> list[str]:
    """One process, no launcher."""
    return [python, "-m", TRAIN_MODULE, *train_args]


def local_command(train_args: Sequence[str], nproc_per_node: int, python: str = sys.executable) -> list[str]:
    """N processes on this node; ``--standalone`` picks a free rendezvous port itself."""
    return [
        *torchrun(python),
        "--standalone",
        "--nnodes=1",
        f"--nproc_per_node={nproc_per_node}",
        "-m",
        TRAIN_MODULE,
        *train_args,
    ]


def slurm_command(
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
        TRAIN_MODULE,
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
        return slurm_command(train_args, nproc_per_node, env, master_host or first_host(env), port, python)
    if nproc_per_node > 1:
        return local_command(train_args, nproc_per_node, python)
    return single_command(train_args, python)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m cama.pretrain.launch", description=__doc__.split("\n")[0])
    p.add_argument("--gpus", type=int, default=0, help="GPUs per node (0: CPU)")
    p.add_argument("--tasks", type=int, default=1, help="processes per node on CPU")
    p.add_argument("--threads", type=int, default=0, help="cores per node to share among processes")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="rendezvous port (multi-node)")
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = p.parse_args(own)
    nproc = processes_per_node(args.gpus, args.tasks)
    cmd = command(train_args, nproc_per_node=nproc, env=os.environ, port=args.port)
    env = dict(os.environ)
    if args.threads:
        env.update(thread_env(args.threads, nproc))
    print("launch:", shlex.join(cmd), flush=True)
    if args.dry_run:
        return
    os.execvpe(cmd[0], cmd, env)  # the job is this process: a kill reaches torchrun directly


if __name__ == "__main__":
    main()
