"""GPU benchmark: ``cama serve`` under concurrent ``openai`` clients, against two references.

**Model.** Random-init TinyLlama-1.1B shape in bf16 (``SHAPE`` and the word-level tokenizer of
``benchmarks/generate_throughput.py``, one copy), saved to a temporary folder and served by
``cama serve`` in its own process, as a user runs it.

**Workload.** Prompts of ``--prompt-tokens`` (128) random tokens, each asking for exactly
``--new-tokens`` (128) tokens, greedy, through ``/v1/completions`` (the raw prompt: the word-level
tokenizer reads back the same ids). A random model seldom emits EOS; the tokens counted are the
``usage.completion_tokens`` the server reports.

**Clients.** For each of ``--clients`` (1, 8, 32, 128): that many concurrent clients
(``openai.AsyncOpenAI``, one connection pool) each send ``--rounds`` requests one after another
(closed loop); an untimed warm-up round first (CUDA graphs are captured on first use). Total
tokens/s = completion tokens over the wall time; p50/p95 = request latency.

**References**, in the same run:

- ``one at a time``: the same server with one client, one request after another (its 1-client row);
- ``offline``: the engine in this process (``Engine.generate``) on the same prompts at batch B.

**Targets** (issue 15): at 32 clients, total tokens/s >= 20x the one-at-a-time server, and
>= 0.6x the offline engine at batch 32 (HTTP and batching must not eat the engine's speed).

Run on one GPU (a few minutes)::

    PYTHONPATH=src python benchmarks/serve_throughput.py [--out serve.json]
    PYTHONPATH=src python benchmarks/serve_throughput.py --smoke      # CPU, tiny model, < 1 minute

Needs torch, transformers, tokenizers, and the ``[serve]`` extra's fastapi, uvicorn and openai
(with their dependencies: starlette, pydantic, anyio, h11, the openai client's HTTP stack); not gradio.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

_spec = importlib.util.spec_from_file_location("generate_throughput", ROOT / "benchmarks" / "generate_throughput.py")
gt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gt)  # SHAPE, SMOKE_SHAPE, build_model, build_tokenizer: one copy

from cama.generate.engine import Engine  # noqa: E402
from cama.generate.settings import Settings  # noqa: E402


def log(obj) -> None:
    print(json.dumps(obj), flush=True)


def prompts_for(n: int, length: int, vocab: int, seed: int = 0) -> list[str]:
    """``n`` distinct prompts of ``length`` word-level tokens (``t<id>``), no special ids."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"t{i}" for i in rng.integers(3, vocab, size=length)) for _ in range(n)]


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


# -- the offline reference -----------------------------------------------------------------------
def offline(model, tokenizer, prompts: list[str], batches: list[int], new: int, max_length: int) -> dict[int, dict]:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    out = {}
    for b in batches:
        engine = Engine(model, tokenizer, max_batch=b, max_length=max_length)
        batch, settings = prompts[:b], Settings(max_new_tokens=new)
        engine.generate(batch, settings)  # cold: graphs captured
        sync()
        t = time.perf_counter()
        gens = engine.generate(batch, settings)
        sync()
        dt = time.perf_counter() - t
        tokens = sum(g.completion_tokens for g in gens)
        out[b] = {"batch": b, "tokens": tokens, "seconds": round(dt, 3), "tokens_per_s": round(tokens / dt, 1)}
        log({"offline": out[b]})
        if hasattr(engine, "release"):
            engine.release()
        del engine
    return out


# -- the server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``cama serve`` in a subprocess, its log in a file; stopped with SIGINT (then killed)."""

    def __init__(self, model_dir: Path, log_path: Path, max_batch: int, new: int, max_length: int, threads: int = 0):
        self.port, self.log_path = free_port(), log_path
        cmd = [sys.executable, "-m", "cama.cli", "serve", "--model", str(model_dir), "--name", "bench",
               "--port", str(self.port), "--max-batch", str(max_batch), "--max-queue", str(8 * max_batch),
               "--max-tokens", str(new), "--max-length", str(max_length)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env.pop("CAMA_API_KEY", None)
        if threads:  # CPU: one intra-op thread each for the server and the clients, as the offline run
            env["OMP_NUM_THREADS"] = str(threads)
        self.log_file = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cama serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"cama serve not ready after {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


async def load(url: str, prompts: list[str], clients: int, rounds: int, new: int) -> dict:
    """``clients`` concurrent closed-loop clients, ``rounds`` requests each; tokens/s and latencies."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0, timeout=900)
    latencies: list[float] = []
    tokens, errors = 0, []

    async def one_client(c: int) -> None:
        nonlocal tokens
        for r in range(rounds):
            prompt = prompts[(c * rounds + r) % len(prompts)]
            t = time.perf_counter()
            try:
                resp = await client.completions.create(model="bench", prompt=prompt, max_tokens=new, temperature=0)
            except openai.OpenAIError as e:
                errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            latencies.append(time.perf_counter() - t)
            tokens += resp.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    await client.close()
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
            "tokens": tokens, "seconds": round(wall, 3), "tokens_per_s": round(tokens / wall, 1) if wall else 0.0,
            "p50_s": round(percentile(latencies, 50), 3), "p95_s": round(percentile(latencies, 95), 3)}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, a tiny model, 1 and 4 clients (< 1 minute)")
    ap.add_argument("--clients", help="concurrency levels (default 1,8,32,128; smoke 1,4)")
    ap.add_argument("--rounds", type=int, help="requests per client per level (default 3; smoke 2)")
    ap.add_argument("--new-tokens", type=int, help="new tokens per request (default 128; smoke 16)")
    ap.add_argument("--prompt-tokens", type=int, help="prompt tokens (default 128; smoke 32)")
    ap.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for the server to load")
    ap.add_argument("--out", help="write the results to this JSON file")
    a = ap.parse_args(argv)
    smoke = a.smoke
    device = "cpu" if smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not smoke:
        print("no GPU: use --smoke for the CPU check", file=sys.stderr)
        return 2
    clients = [int(x) for x in (a.clients or ("1,4" if smoke else "1,8,32,128")).split(",")]
    rounds = a.rounds or (2 if smoke else 3)
    new = a.new_tokens or (16 if smoke else 128)
    plen = a.prompt_tokens or (32 if smoke else 128)
    shape = gt.SMOKE_SHAPE if smoke else gt.SHAPE
    if smoke:
        torch.set_num_threads(1)  # the server process gets the other core
    head = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
            "clients": clients, "rounds": rounds, "new_tokens": new, "prompt_tokens": plen}  # fmt: skip
    log({"setup": head})
    prompts = prompts_for(max(clients) * rounds, plen, shape["vocab_size"])
    results: dict = {"setup": head, "offline": {}, "server": {}}
    work = Path(tempfile.mkdtemp(prefix="cama-serve-bench-"))
    model_dir = work / "model"

    max_length = plen + new + 64  # the same for the server and the offline engine
    model = gt.build_model(shape, device, torch.float32 if smoke else torch.bfloat16)
    tokenizer = gt.build_tokenizer(shape["vocab_size"])
    model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    try:
        batches = sorted({c for c in clients if c > 1} | ({32} if not smoke else set()))
        results["offline"] = offline(model, tokenizer, prompts, batches, new, max_length)
    except Exception as e:  # noqa: BLE001 - report it and go on to the server
        log({"offline_failed": f"{type(e).__name__}: {e}"})
    del model
    if device == "cuda":
        torch.cuda.empty_cache()

    server = Server(model_dir, work / "server.log", max_batch=max(clients), new=new, max_length=max_length,
                    threads=1 if smoke else 0)
    try:
        server.wait_ready(a.ready_timeout)
        for c in clients:
            try:
                asyncio.run(load(server.url, prompts, c, 1, new))  # warm-up: graphs for this batch size
                row = asyncio.run(load(server.url, prompts, c, rounds, new))
            except Exception as e:  # noqa: BLE001 - one level failing does not lose the others
                row = {"clients": c, "failed": f"{type(e).__name__}: {e}"}
            results["server"][c] = row
            log({"server": row})
    except Exception as e:  # noqa: BLE001
        log({"server_failed": f"{type(e).__name__}: {e}"})
    finally:
        server.stop()
        log({"server_log_tail": server.tail(8)})

    summarize(results, clients)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return 0


def summarize(results: dict, clients: list[int]) -> None:
    srv, off = results["server"], results["offline"]
    print(f"\n{'clients':>8} {'tokens/s':>10} {'p50 s':>8} {'p95 s':>8} {'errors':>7} {'offline tok/s':>14} {'server/offline':>15}")
    for c in clients:
        r = srv.get(c, {})
        o = off.get(c, {}).get("tokens_per_s")
        ratio = f"{r['tokens_per_s'] / o:.2f}" if o and r.get("tokens_per_s") else "-"
        print(f"{c:>8} {r.get('tokens_per_s', '-'):>10} {r.get('p50_s', '-'):>8} {r.get('p95_s', '-'):>8} "
              f"{r.get('errors', '-'):>7} {o or '-':>14} {ratio:>15}")  # fmt: skip
    single = srv.get(1, {}).get("tokens_per_s")
    at = 32 if 32 in srv else max(c for c in clients)
    top, ref = srv.get(at, {}).get("tokens_per_s"), off.get(at, {}).get("tokens_per_s")
    summary = {"at_clients": at}
    if single and top:
        summary["vs_one_at_a_time"] = round(top / single, 2)
    if ref and top:
        summary["vs_offline"] = round(top / ref, 2)
    if at == 32:
        summary["target_20x_met"] = summary.get("vs_one_at_a_time", 0) >= 20
        summary["target_0.6_offline_met"] = summary.get("vs_offline", 0) >= 0.6
    results["summary"] = summary
    print()
    log({"summary": summary})


if __name__ == "__main__":
    sys.exit(main())
