"""``cama serve``: the OpenAI-compatible API on a model the pipeline made (uvicorn), or vLLM's server.

    cama serve --model results/lora/merged                      # http://127.0.0.1:8000/v1
    cama serve --model results/pretrain/model --adapter lora=results/lora/adapter
    CAMA_API_KEY=secret cama serve --model results/lora/merged  # clients send the key as a bearer token
    cama serve --engine vllm --model results/lora/merged        # exec vLLM's own server instead
    cama serve --engine vllm --print-command --model results/pretrain/model --adapter lora=results/lora/adapter
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import socket
import sys
import threading
from contextlib import contextmanager

from cama.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model folder: base, pretrained or merged")
    p.add_argument("--name", help="the name clients ask for in `model` (default: the folder's name)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                   help="a LoRA adapter on --model, served as NAME (repeatable)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key-env", default="CAMA_API_KEY", metavar="VAR",
                   help="environment variable holding the key clients must send; unset: no key (default: %(default)s)")  # fmt: skip
    p.add_argument("--preset", help="decoding preset for fields a request leaves out (default: the engine's defaults)")
    p.add_argument("--max-batch", type=int, default=64, help="requests decoded together (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=256,
                   help="requests waiting for a place in the batch; more get 429 (default: %(default)s)")  # fmt: skip
    p.add_argument("--max-length", type=int,
                   help="tokens one request may span, prompt and completion (default: the model's context)")  # fmt: skip
    p.add_argument("--max-tokens", type=int, default=1024, help="most new tokens a request may ask for")
    p.add_argument("--engine", choices=["cama", "vllm"], default="cama",
                   help="cama: this process; vllm: exec `vllm serve` on the same model (needs vllm installed)")  # fmt: skip
    p.add_argument("--print-command", action="store_true", help="with --engine vllm: print the command, run nothing")
    p.add_argument("--vllm-args", default="", help="more arguments for `vllm serve`, as one shell-quoted string")


def run(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        return _run_vllm(args)
    if args.print_command:
        raise ConfigError("--print-command goes with --engine vllm")
    import uvicorn

    app = build_app(args)
    engines = [served.engine.start() for served in app.state.models.values()]
    log.info("serving %s on http://%s:%d/v1", ", ".join(app.state.models), args.host, args.port)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)
    finally:
        for engine in engines:
            engine.stop()
    return 0


def build_app(args: argparse.Namespace):
    """The FastAPI app for ``cama serve``'s arguments (models loaded, engines not started yet)."""
    from cama.serve.models import PRESETS, load_models
    from cama.serve.openai_api import create_app

    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    models = load_models(args.model, args.name, args.adapter, max_batch=args.max_batch, max_queue=args.max_queue,
                         max_length=args.max_length)  # fmt: skip
    preset = PRESETS[args.preset] if args.preset else None
    return create_app(models, preset=preset, max_tokens=args.max_tokens, api_key_env=args.api_key_env)


def _run_vllm(args: argparse.Namespace) -> int:
    from cama.serve.vllm import vllm_command, vllm_env

    argv = vllm_command(args.model, args.name, args.adapter, args.host, args.port, extra=shlex.split(args.vllm_args))
    if args.print_command:
        print(shlex.join(argv))
        return 0
    if shutil.which(argv[0]) is None:
        raise ConfigError(f"--engine vllm: `{argv[0]}` is not on PATH; `pip install vllm` on a GPU machine "
                          f"(or run `cama serve` without --engine vllm). The command would be:\n  {shlex.join(argv)}")  # fmt: skip
    log.info("exec %s", shlex.join(argv))
    sys.stdout.flush()
    os.execvpe(argv[0], argv, vllm_env(args.api_key_env))
    return 1  # not reached


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0):
    """Run ``app`` with uvicorn in a thread on a free port; yields its base URL (``http://host:port/v1``).

    For tests and benchmarks that talk to a real server over loopback in the same process.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            threading.Event().wait(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
