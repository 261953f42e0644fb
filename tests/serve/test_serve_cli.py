"""``cama serve`` as a user runs it: its own server in a subprocess, and the vLLM command it builds."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from cama.chat import CHAT_TEMPLATE
from cama.cli import main
from cama.serve.vllm import vllm_command, vllm_env

openai = pytest.importorskip("openai", reason="the [serve] extra is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cama_serve_subprocess_answers_and_stops_on_sigint(tiny_chat, tiny_adapter, tmp_path):
    port = _free_port()
    env = {**os.environ, "CAMA_API_KEY": "k3y"}
    proc = subprocess.Popen([sys.executable, "-m", "cama.cli", "serve", "--model", str(tiny_chat), "--name", "tiny",
                             "--adapter", f"lora={tiny_adapter}", "--port", str(port), "--max-tokens", "16"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k3y", max_retries=0, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            try:
                names = [m.id for m in client.models.list().data]
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
                time.sleep(0.3)
        assert names == ["tiny", "lora"]
        r = client.chat.completions.create(model="lora", messages=[{"role": "user", "content": "你好"}], max_tokens=4)
        assert r.usage.completion_tokens >= 1
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="lora", messages=[{"role": "user", "content": "你好"}], max_tokens=17)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "k3y" not in out  # the key never reaches the log


def test_vllm_command_for_a_merged_model(tiny_chat, tmp_path, capsys):
    assert main(["serve", "--engine", "vllm", "--print-command", "--model", str(tiny_chat), "--port", "8123",
                 "--vllm-args", "--tensor-parallel-size 2 --gpu-memory-utilization 0.9"]) == 0  # fmt: skip
    argv = shlex.split(capsys.readouterr().out)
    assert argv[:3] == ["vllm", "serve", str(tiny_chat)]
    opts = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert opts["--served-model-name"] == tiny_chat.name and opts["--port"] == "8123"
    assert opts["--host"] == "127.0.0.1" and opts["--tensor-parallel-size"] == "2"
    with open(opts["--chat-template"], encoding="utf-8") as f:  # vLLM prompts exactly as cama does
        assert f.read() == CHAT_TEMPLATE
    assert "--enable-lora" not in argv


def test_vllm_command_for_base_plus_adapters(tiny_chat, tiny_adapter, tmp_path):
    argv = vllm_command(tiny_chat, "base", [f"lora={tiny_adapter}", f"again={tiny_adapter}"], template_dir=tmp_path)
    i = argv.index("--enable-lora")
    assert argv[i + 1 : i + 4] == ["--lora-modules", f"lora={tiny_adapter}", f"again={tiny_adapter}"]
    # the tiny adapter has r=4; vLLM's smallest allowed --max-lora-rank that holds it is 8
    assert argv[argv.index("--max-lora-rank") + 1] == "8" and argv[argv.index("--max-loras") + 1] == "2"
    env = vllm_env("CAMA_API_KEY", {"CAMA_API_KEY": "s3cret", "PATH": "/bin"})
    assert env["VLLM_API_KEY"] == "s3cret" and not any("s3cret" in a for a in argv)
    assert "VLLM_API_KEY" not in vllm_env("CAMA_API_KEY", {"PATH": "/bin"})


def test_vllm_is_execd_with_that_command_and_the_key_in_its_environment(tiny_chat, tiny_adapter, tmp_path):
    """vLLM cannot be installed here: a `vllm` on PATH that records how it was started stands in for it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "called.txt"
    (bin_dir / "vllm").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\necho "key=$VLLM_API_KEY" >> {record}\n')
    (bin_dir / "vllm").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CAMA_API_KEY": "s3cret"}
    cmd = [sys.executable, "-m", "cama.cli", "serve", "--engine", "vllm", "--model", str(tiny_chat),
           "--adapter", f"lora={tiny_adapter}"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = record.read_text().splitlines()
    assert lines[:2] == ["serve", str(tiny_chat)] and f"lora={tiny_adapter}" in lines
    assert lines[-1] == "key=s3cret" and "s3cret" not in done.stderr + done.stdout


def test_vllm_missing_or_bad_folders_say_what_is_wrong(tiny_chat, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vllm there
    assert main(["serve", "--engine", "vllm", "--model", str(tiny_chat)]) == 1
    err = capsys.readouterr().err
    assert "`vllm` is not on PATH" in err and f"vllm serve {tiny_chat}" in err
    assert main(["serve", "--engine", "vllm", "--print-command", "--model", str(tmp_path)]) == 1
    assert "not a model folder" in capsys.readouterr().err
    assert main(["serve", "--engine", "vllm", "--print-command", "--model", str(tiny_chat), "--adapter", f"x={tmp_path}"]) == 1
    assert "not a peft adapter folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["chat", "web", "serve"])
def test_each_front_end_names_a_folder_that_is_not_a_model(command, tmp_path, capsys):
    assert main([command, "--model", str(tmp_path)]) == 1
    assert f"--model {tmp_path}: not a model folder" in capsys.readouterr().err
    assert main([command, "--model", str(tmp_path), "--preset", "fast"]) == 1
    assert "--preset 'fast': expected one of" in capsys.readouterr().err
