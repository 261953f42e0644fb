"""Launcher argv for one process, N processes on a node, and a 2-node Slurm allocation."""

import shlex
import sys

from cama.train import launch

MODULE = "cama.pretrain.train"
ARGS = ["--blend", "b.json", "--settings", '{"max_steps": 3}']


def test_one_process_runs_the_module_under_the_worker():
    cmd = launch.command(MODULE, ARGS, nproc_per_node=1, env={})
    assert cmd == [sys.executable, "-m", "cama.train.worker", MODULE, *ARGS]


def test_n_processes_use_torchrun_standalone():
    cmd = launch.command(MODULE, ARGS, nproc_per_node=4, env={})
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and "--nproc_per_node=4" in cmd and "--nnodes=1" in cmd
    assert cmd[cmd.index("-m", 3) + 1 :][:2] == ["cama.train.worker", MODULE]
    assert cmd[-len(ARGS) :] == ARGS


def test_one_node_slurm_job_is_a_local_launch():
    env = {"SLURM_JOB_ID": "7", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "gpu01"}
    assert launch.command(MODULE, ARGS, nproc_per_node=8, env=env)[3] == "--standalone"


def test_two_node_slurm_uses_srun_and_a_rendezvous_at_the_first_host():
    env = {"SLURM_JOB_ID": "1234", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NODEID": "0"}
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)

        class R:
            stdout = "gpu01\ngpu02\n"

        return R()

    host = launch.first_host(env, run=fake_run)
    assert calls == [["scontrol", "show", "hostnames", "gpu[01-02]"]] and host == "gpu01"
    cmd = launch.command(MODULE, ARGS, nproc_per_node=8, env=env, master_host=host, port=29600)
    assert cmd[:5] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert cmd[5:7] == ["bash", "-c"]
    inner = shlex.split(cmd[7])
    assert inner[0] == "exec" and inner[2:4] == ["-m", "torch.distributed.run"]
    assert "--nnodes=2" in inner and "--nproc_per_node=8" in inner
    assert "--node_rank=$SLURM_NODEID" in inner  # left for each node's shell to expand
    assert "--rdzv_endpoint=gpu01:29600" in inner and "--rdzv_id=1234" in inner
    assert inner[-len(ARGS) - 2 : -len(ARGS)] == ["cama.train.worker", MODULE]
    assert inner[-len(ARGS) :] == ARGS  # JSON survives the shell quoting


def test_processes_per_node_and_threads():
    assert launch.processes_per_node(gpus=4, tasks=1) == 4
    assert launch.processes_per_node(gpus=0, tasks=2) == 2
    assert launch.thread_env(8, 2) == {"OMP_NUM_THREADS": "4"}
    assert launch.thread_env(1, 2) == {"OMP_NUM_THREADS": "1"}


def test_dry_run_prints_the_command(capsys):
    assert launch.main(["--tasks", "2", "--dry-run", "--", *ARGS], module=MODULE) == 0
    out = capsys.readouterr().out
    assert "torch.distributed.run" in out and "--nproc_per_node=2" in out and MODULE in out


def test_cama_pretrain_passes_everything_after_the_separator(capsys):
    from cama.cli import main

    assert main(["pretrain", "--tasks", "3", "--threads", "6", "--dry-run", "--", *ARGS]) == 0
    line = capsys.readouterr().out.strip().removeprefix("launch: ")
    cmd = shlex.split(line)
    assert "--nproc_per_node=3" in cmd and cmd[-len(ARGS) :] == ARGS
