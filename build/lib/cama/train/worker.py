"""A training process: die with the parent, then run the stage's module as ``__main__``.

    python -m cama.train.worker cama.pretrain.train --blend ... (what the launcher starts)

The parent-death signal is set first, before torch is imported, so a worker whose torchrun
(or launcher) is killed never trains on alone; see ``cama.train.launch``.
"""

from __future__ import annotations

import os
import runpy
import signal
import socket
import sys

from cama.train.launch import LAUNCHER, set_parent_death_signal


def _launcher_gone() -> bool:
    """The launcher of this job ran on this host and is no longer there."""
    host, _, pid = os.environ.get(LAUNCHER, "").rpartition(":")
    if not pid or host != socket.gethostname():  # another node of a Slurm job: srun's business
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m cama.train.worker <module> [arguments]")
    parent = os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    # the parent (torchrun or the launcher) died before the line above, or the launcher did
    if os.getppid() != parent or _launcher_gone():
        raise SystemExit("cama.train.worker: the launcher is gone; not starting")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
