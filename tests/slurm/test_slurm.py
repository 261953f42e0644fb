"""The demo workflow on a real Slurm cluster, through `--profile profiles/slurm`.

A session fixture starts a one-node cluster with tests/slurm/start_cluster.sh (munged,
slurmctld, slurmd on this machine) and always stops it again with stop_cluster.sh.
It needs root. Without root the tests skip; with CAMA_REQUIRE_SLURM=1 (CI) they fail instead.

What is shown here:
- every job of the demo DAG is submitted with sbatch (a Slurm job id per job, and slurmctld
  saw each one complete), and the outputs pass the same checks as the local run
  (tests/workflow/test_workflow.py);
- a job killed with scancel fails the run with a message naming it, and the rerun completes;
- `snakemake --profile slurm` (the bare name) finds the profile from a clone's root;
- bad input fails fast with a message a user can act on: a resource the plugin refuses,
  a job bigger than the cluster, a missing munge key.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROFILE = ROOT / "profiles" / "slurm"
STATE = Path(os.environ.get("CAMA_SLURM_STATE", "/tmp/cama-slurm"))
REQUIRED = os.environ.get("CAMA_REQUIRE_SLURM") == "1"
# The job killed with scancel while it runs: a leaf of the DAG, so the first run still does all
# the rest (keep-going) and the rerun has only this one left to do.
VICTIM_RULE = "corpus_report"
# The demo's jobs take seconds: poll Slurm every 2 s instead of the profile's 10 s (a site's
# jobs take minutes to days). This is the only setting the tests change in the profile.
FAST = ("--slurm-init-seconds-before-status-checks", "2")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _load_workflow_tests():
    """tests/workflow/test_workflow.py as a module: its helpers and output checks are reused here."""
    spec = importlib.util.spec_from_file_location(
        "cama_workflow_checks", ROOT / "tests" / "workflow" / "test_workflow.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wf = _load_workflow_tests()

# The local run's output checks: every test there that only reads the finished `demo_run`.
# Checks that rerun the workflow locally are left out: here the runs go through Slurm.
NOT_READ_ONLY = {"test_deleting_one_output_reruns_only_what_depends_on_it"}
OUTPUT_CHECKS = {
    name: fn
    for name, fn in vars(wf).items()
    if name.startswith("test_")
    and callable(fn)
    and list(inspect.signature(fn).parameters) == ["demo_run"]
    and name not in NOT_READ_ONLY
}


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"CAMA_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


def sh(*cmd: str, timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def snakemake(
    workdir: Path, *args: str, timeout: float = 600, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Snakemake as a user runs it on a login node; returns even on failure (the caller checks)."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    # shell rules call `python`: make it this interpreter, as an activated venv would
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate()
        raise AssertionError(
            f"snakemake did not finish in {timeout}s (hung?):\n{' '.join(cmd)}\n{out[-6000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def submitted(log: str) -> dict[str, str]:
    """Snakemake job id -> Slurm job id, from the executor plugin's 'submitted' lines."""
    return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))


def rule_jobs(log: str) -> dict[str, str]:
    """Snakemake job id -> rule, for the jobs a run started remotely (`rule x:`, not `localrule x:`)."""
    pattern = r"^rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+jobid: (\d+)$"
    return {jobid: rule for rule, jobid in re.findall(pattern, log, re.M)}


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster():
    """A running one-node cluster; stopped again at the end of the session, whatever happened."""
    if os.geteuid() != 0:
        _unavailable(
            "the test cluster needs root (tests/slurm/start_cluster.sh installs and starts munged, slurmctld, slurmd)"
        )
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        _unavailable("no slurmctld and no apt-get to install slurm-wlm")
    env = {**os.environ, "CAMA_SLURM_STATE": str(STATE)}
    try:
        start = sh("bash", str(HERE / "start_cluster.sh"), timeout=900, env=env)
        if start.returncode != 0:
            if "apt-get" in start.stderr and shutil.which("slurmctld") is None:
                _unavailable(f"cannot install Slurm: {start.stderr[-2000:]}")
            pytest.fail(f"start_cluster.sh failed:\n{start.stdout}\n{start.stderr}")
        os.environ["SLURM_CONF"] = str(
            STATE / "slurm.conf"
        )  # for sinfo/sbatch here and in the jobs
        yield STATE
    finally:
        stop = sh("bash", str(HERE / "stop_cluster.sh"), timeout=120, env=env)
        print(stop.stderr, file=sys.stderr)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The demo DAG through Slurm, twice: a first run in which one job is killed with scancel,
    then the rerun that a user would type, which completes."""
    workdir = tmp_path_factory.mktemp("slurm_demo")
    planned = wf.planned_jobs(workdir)
    killed: list[str] = []
    stop = threading.Event()

    def kill_victim():
        # The comment the plugin gives each job starts with rule_<rule>; kill that one while it runs.
        while not stop.is_set():
            q = sh("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k")
            for line in q.stdout.splitlines():
                jobid, _, comment = line.partition("|")
                if comment.startswith(f"rule_{VICTIM_RULE}"):
                    sh("scancel", jobid)
                    killed.append(jobid)
                    return
            time.sleep(1)

    watcher = threading.Thread(target=kill_victim, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    # the whole demo DAG, its jobs sharing the test node's 2 CPUs: over 10 minutes on a busy
    # machine; the limit only tells a hang from a slow run
    first = snakemake(workdir, "--profile", str(PROFILE), *FAST, "--retries", "0", timeout=1800)
    t_first = time.monotonic() - t0
    stop.set()
    watcher.join()
    t0 = time.monotonic()
    rerun = snakemake(workdir, "--profile", str(PROFILE), *FAST)
    t_rerun = time.monotonic() - t0
    print(
        f"slurm demo: first run {t_first:.0f}s (one job killed), rerun {t_rerun:.0f}s",
        file=sys.stderr,
    )
    return {
        "workdir": workdir,
        "planned": planned,
        "first": first,
        "rerun": rerun,
        "killed": killed,
    }


# --------------------------------------------------------------------------------------------
def test_rerun_after_scancel_completes(slurm_run):
    first, rerun, killed = slurm_run["first"], slurm_run["rerun"], slurm_run["killed"]
    assert killed, f"no {VICTIM_RULE} job was ever seen running:\n{first.stdout[-4000:]}"
    # The first run fails, and says which Slurm job died and how.
    assert first.returncode != 0, first.stdout[-4000:]
    assert f"SLURM-job '{killed[0]}' failed, SLURM status is: 'CANCELLED'" in first.stdout, (
        first.stdout[-4000:]
    )
    # The rerun submits the killed rule again, under a new Slurm job id, and finishes.
    assert rerun.returncode == 0, rerun.stdout[-6000:]
    rerun_rules = rule_jobs(rerun.stdout)
    assert VICTIM_RULE in rerun_rules.values()
    assert killed[0] not in submitted(rerun.stdout).values()
    assert wf.planned_jobs(slurm_run["workdir"]) == {}


def test_every_job_went_through_sbatch(slurm_run):
    planned = slurm_run["planned"]
    remote = {rule: n for rule, n in planned.items() if rule != "all"}
    logs = slurm_run["first"].stdout + slurm_run["rerun"].stdout
    rules = {**rule_jobs(slurm_run["first"].stdout)}
    subs = submitted(slurm_run["first"].stdout)
    # Snakemake job ids restart in each run: pair them up run by run.
    pairs = [(rules[j], s) for j, s in subs.items()]
    rules2, subs2 = rule_jobs(slurm_run["rerun"].stdout), submitted(slurm_run["rerun"].stdout)
    pairs += [(rules2[j], s) for j, s in subs2.items()]
    # every remote job of either run has a Slurm id...
    for r, jobs in ((rules, subs), (rules2, subs2)):
        assert set(r) == set(jobs), f"jobs run without sbatch: {set(r) - set(jobs)}"
    # ...every planned job completed under one, the killed one twice...
    done = {}
    for rule, slurm_id in pairs:
        if slurm_id not in slurm_run["killed"]:
            done[rule] = done.get(rule, 0) + 1
    assert done == remote, f"planned {remote}, completed through Slurm {done}"
    assert "localrule all:" in logs  # only the target-only rule ran on the login node
    # ...and slurmctld itself saw each of them end with exit status 0 (or the kill).
    ctld = (STATE / "log" / "slurmctld.log").read_text()
    for _, slurm_id in pairs:
        if slurm_id in slurm_run["killed"]:
            continue
        assert re.search(rf"_job_complete: JobId={slurm_id} WEXITSTATUS 0\b", ctld), (
            f"slurmctld: job {slurm_id} not completed"
        )
    # The Slurm log of every completed job is kept (slurm-keep-successful-logs).
    logdir = slurm_run["workdir"] / ".snakemake" / "slurm_logs"
    kept = {p.stem for p in logdir.rglob("*.log")}
    assert {s for _, s in pairs} <= kept


@pytest.mark.parametrize(
    "check",  # each with the local check's own marks (an xfail stays one here)
    [pytest.param(name, marks=getattr(OUTPUT_CHECKS[name], "pytestmark", [])) for name in sorted(OUTPUT_CHECKS)],
)
def test_outputs_pass_the_local_runs_checks(slurm_run, check):
    assert slurm_run["rerun"].returncode == 0, slurm_run["rerun"].stdout[-4000:]
    OUTPUT_CHECKS[check](slurm_run["workdir"])


def test_bare_profile_name_resolves_from_the_clone_root(tmp_path):
    # `snakemake --profile slurm` looks for ./slurm first: the repo root has a symlink to profiles/slurm.
    assert (ROOT / "slurm").resolve() == PROFILE
    proc = snakemake(tmp_path, "--profile", "slurm", "-n", timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Using profiles slurm" in proc.stdout


# --- bad input ------------------------------------------------------------------------------
def _profile_with(tmp_path: Path, **extra) -> Path:
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    for key, value in extra.items():
        settings.setdefault(key, {}).update(value)
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


ONE_JOB = "results/raw/lunyu_zh"  # a single download job: bad input fails on its submission


def test_resource_the_plugin_refuses(cluster, tmp_path):
    profile = _profile_with(
        tmp_path, **{"set-resources": {"download_source": {"slurm_extra": "'--mem=1000'"}}}
    )
    t0 = time.monotonic()
    proc = snakemake(
        tmp_path / "w", ONE_JOB, "--profile", str(profile), *FAST, "--retries", "0", timeout=180
    )
    assert proc.returncode != 0
    assert "option is not allowed in the 'slurm_extra' parameter" in proc.stdout, proc.stdout[
        -4000:
    ]
    assert "Please use the appropriate snakemake resource" in proc.stdout
    assert "has been submitted with SLURM jobid" not in proc.stdout
    print(f"refused slurm_extra in {time.monotonic() - t0:.0f}s", file=sys.stderr)


@pytest.mark.parametrize(
    ("resource", "slurm_says"),
    [
        ("mem_mb=10000000", "Memory specification can not be satisfied"),
        ("cpus_per_task=64", "More processors requested than permitted"),
    ],
    ids=["memory", "cpus"],
)
def test_job_bigger_than_the_cluster_fails_fast(cluster, tmp_path, resource, slurm_says):
    t0 = time.monotonic()
    proc = snakemake(
        tmp_path,
        ONE_JOB,  # before --set-resources, which takes all the words after it
        "--profile",
        str(PROFILE),
        *FAST,
        "--retries",
        "0",
        "--set-resources",
        f"download_source:{resource}",
        timeout=180,  # the cluster refuses at submission (EnforcePartLimits=ALL): no hang
    )
    took = time.monotonic() - t0
    assert proc.returncode != 0
    assert "SLURM sbatch failed" in proc.stdout, proc.stdout[-4000:]
    assert slurm_says in proc.stdout
    assert "rule download_source" in proc.stdout  # names the rule to fix
    assert took < 120, f"took {took:.0f}s to report a job that can never run"


def test_missing_munge_key_is_reported(tmp_path):
    if os.geteuid() != 0:
        _unavailable("start_cluster.sh needs root")
    env = {
        **os.environ,
        "CAMA_SLURM_STATE": str(tmp_path / "state"),
        "CAMA_MUNGE_KEY": str(tmp_path / "no-such-munge.key"),
    }
    proc = sh("bash", str(HERE / "start_cluster.sh"), timeout=900, env=env)
    assert proc.returncode != 0
    assert (
        f"munge key {tmp_path / 'no-such-munge.key'}" in proc.stderr and "is missing" in proc.stderr
    ), proc.stderr
    assert "mungekey --create --keyfile" in proc.stderr  # says how to fix it
    assert not (tmp_path / "state" / "slurm.conf").exists()  # and started nothing
