"""Translation client overhead at concurrency 32 against the loopback server: is the client ever the bottleneck?

    python benchmarks/translate_client.py --requests 2000 --concurrency 32

The loopback ``/v1/chat/completions`` server (``tests/instruct/openai_server.py``) runs in its
own process and answers at once. The same texts (real sentences of the demo's sources) are
sent by:

- the **baseline**: bare ``openai.AsyncOpenAI`` calls, an ``asyncio.Semaphore(32)`` and
  ``asyncio.gather``: no cache, no validation, no budget, no rate windows;
- **ours**: ``cama.instruct.translate`` (masking, the SQLite cache and budget ledger, the
  rate windows, retries, and each answer validated with fastText), on an empty cache;
- **ours, rerun**: the same again, every answer from the cache (what a resumed run costs).

It prints requests per second, the client process's CPU time per request (so what one core
of client could sustain, whatever the server does) and the ratio ours / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SYSTEM = "You are a professional translator. Translate the user's text from English into Simplified Chinese."


def texts(n: int) -> list[str]:
    """Distinct real sentences: self-instruct instructions and outputs, GSM8K questions."""
    out = []
    for line in gzip.open(ROOT / "data/demo/instruct/self_instruct_seed_tasks.jsonl.gz", "rt"):
        r = json.loads(line)
        out += [r["instruction"]] + [i["output"] for i in r["instances"] if len(i["output"]) > 20]
    out += [json.loads(line)["question"] for line in gzip.open(ROOT / "data/demo/instruct/gsm8k_train.jsonl.gz", "rt")]
    out = list(dict.fromkeys(t for t in out if 20 < len(t) < 2000))
    return [f"{out[i % len(out)]} ({i})" for i in range(n)]  # distinct, so none is a cache hit


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def baseline(base_url: str, key: str, items: list[str], concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> str:
        async with sem:
            r = await client.chat.completions.create(
                model="loopback", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                temperature=0.0, max_tokens=2048)
            return r.choices[0].message.content

    await asyncio.gather(*(one(t) for t in items))
    await client.close()


async def ours(base_url: str, key_env: str, items: list[str], concurrency: int, cache_path: Path) -> dict:
    from cama.instruct.translate.cache import Cache
    from cama.instruct.translate.client import ChatClient, ClientSettings
    from cama.instruct.translate.stage import Translator
    from cama.instruct.translate.validate import Checks

    cache = Cache(cache_path)
    client = ChatClient(ClientSettings(base_url=base_url, model="loopback", api_key_env=key_env,
                                       concurrency=concurrency, max_retries=2, backoff_seconds=0.1), cache)
    tr = Translator(client, "zh", "both", Checks())
    results = await asyncio.gather(*(tr.text(t, "en") for t in items))
    await client.close()
    cache.close()
    failed = collections.Counter(r[1] for r in results if r[1] is not None)
    return {**client.stats.as_dict(), "failed": dict(failed)}


def timed(fn) -> tuple[float, float, object]:
    c, t = cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, cpu() - c, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    from cama.corpus.langid import load_model

    load_model()  # fastText loads once, outside the timings
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/instruct/openai_server.py")], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        key = "sk-test-loopback"
        os.environ["CAMA_BENCH_KEY"] = key
        items = texts(args.requests)
        n, c = len(items), args.concurrency
        asyncio.run(baseline(base_url, key, items[:64], c))  # warm both sides up
        wall_b, cpu_b, _ = timed(lambda: asyncio.run(baseline(base_url, key, items, c)))
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache.sqlite"
            wall_o, cpu_o, st = timed(lambda: asyncio.run(ours(base_url, "CAMA_BENCH_KEY", items, c, cache)))
            wall_r, cpu_r, st_r = timed(lambda: asyncio.run(ours(base_url, "CAMA_BENCH_KEY", items, c, cache)))
        print(f"{n} requests, concurrency {c}, loopback server in its own process, instant answers")
        print(f"baseline (bare AsyncOpenAI + semaphore): {n / wall_b:7.0f} req/s, client CPU {1e3 * cpu_b / n:.2f} ms/req")
        print(f"ours (cache, budget, windows, validation): {n / wall_o:7.0f} req/s, client CPU {1e3 * cpu_o / n:.2f} ms/req "
              f"(one core of client sustains {n / cpu_o:.0f} req/s); failed {st['failed'] or 'none'}, p50 latency "
              f"{st['latency_seconds']['p50']} s")
        print(f"ours, rerun from the cache: {n / wall_r:7.0f} records/s, {st_r['requests']} requests sent, {st_r['cache_hits']} cache hits")
        print(f"ratio ours / baseline: {wall_b / wall_o:.2f} in throughput, {cpu_b / cpu_o:.2f} in client CPU")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
