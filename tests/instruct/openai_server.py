"""A loopback server that speaks OpenAI's ``/v1/chat/completions``, with scripted faults.

It stands in for the translation API (which the tests cannot reach) and speaks its real
protocol, so the real ``openai`` client talks to it: ``chat.completion`` objects with
``choices``, ``finish_reason`` and ``usage``; errors as ``{"error": {...}}`` with their status.

Its "translation" is deterministic and in the right language: into Chinese, each English
word becomes two Han characters chosen by a hash, punctuation becomes full-width, and
numbers and placeholders ``⟦n⟧`` are kept; into English, each Han character becomes a common
English word. Asked to answer (question mode), it answers in the asked language.

Faults are consumed one per request, in order (``Served.faults``):

- ``"429"`` or ``"429:<seconds>"``: Too Many Requests with ``Retry-After``;
- ``"500"``: an internal server error;
- ``"stall"``: no answer for ``stall_seconds`` (longer than the client's timeout);
- ``"malformed"``: 200 with a JSON body cut in half;
- ``"wrong_lang"``: the text sent back untranslated;
- ``"refusal"``: "I'm sorry, but I can't help with that.";
- ``"empty"``: an empty answer; ``"drop_code"``: the placeholders left out;
- ``"ok"``: no fault (to aim a later fault at a later request).

Run as a script (``python openai_server.py --delay 0.05``) it serves from its own process
and prints its port: the benchmark and the kill test use it that way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
EN_WORDS = (
    "the of and to in is was for that with as on by at from this which be are have it an not "
    "were or had they has their one been all we can more there would will other into after "
    "when first only some time new two people these many such made may most over also year "
    "water city house river world school story music light country state small great state"
).split()
REFUSAL = "I'm sorry, but I can't help with that."
_WORD = re.compile(r"⟦\d+⟧|\d+(?:\.\d+)?|[A-Za-z']+|[\u4e00-\u9fff]|\S")
_PUNCT_ZH = {".": "。", ",": "，", "?": "？", "!": "！", ":": "：", ";": "；"}


def _h(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")


def to_chinese(text: str) -> str:
    out = []
    for line in text.split("\n"):
        parts = []
        for tok in _WORD.findall(line):
            if tok.startswith("⟦") or tok[0].isdigit():
                parts.append(tok)
            elif tok[0].isalpha() and tok.isascii():
                h = _h(tok.lower())
                parts.append(HAN[h % len(HAN)] + HAN[(h >> 8) % len(HAN)])
            else:
                parts.append(_PUNCT_ZH.get(tok, tok))
        out.append("".join(parts))
    return "\n".join(out)


def to_english(text: str) -> str:
    out = []
    for line in text.split("\n"):
        words = []
        for tok in _WORD.findall(line):
            words.append(EN_WORDS[_h(tok) % len(EN_WORDS)] if "\u4e00" <= tok[0] <= "\u9fff" else tok)
        out.append(" ".join(words))
    return "\n".join(out)


@dataclass
class Served:
    """What the server answers and what it saw."""

    faults: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds before every answer
    stall_seconds: float = 5.0
    api_key: str = "sk-test-loopback"
    requests: list[dict] = field(default_factory=list)  # {"time", "body", "fault"}
    base_url: str = ""
    log: object = None  # a text file: each request body is appended as a JSON line
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]


def answer_for(body: dict) -> str:
    messages = body["messages"]
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    if "into Simplified Chinese" in system:
        return to_chinese(last)
    if "into English" in system:
        return to_english(last)
    if "中文" in system:  # question mode, answering in Chinese
        return "答：" + to_chinese(last)
    return "Answer: " + to_english(last)


def usage(body: dict, content: str) -> dict:
    prompt = sum(len(m["content"].encode()) // 4 + 3 for m in body["messages"])
    completion = len(content.encode()) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
            data = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall): fine
                pass

        def _error(self, status: int, message: str, kind: str, headers: dict | None = None) -> None:
            self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/v1/models"):
                return self._json(200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]})
            self._error(404, "not found", "invalid_request_error")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.headers.get("Authorization") != f"Bearer {served.api_key}":
                return self._error(401, "bad key", "invalid_request_error")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._error(404, "not found", "invalid_request_error")
            with served.lock:
                fault = served.faults.pop(0) if served.faults else None
                served.requests.append({"time": time.monotonic(), "body": body, "fault": fault})
                if served.log is not None:
                    served.log.write(json.dumps(body, ensure_ascii=False) + "\n")
                    served.log.flush()
            if served.delay:
                time.sleep(served.delay)
            if fault and fault.startswith("429"):
                wait = fault.split(":", 1)[1] if ":" in fault else "1"
                return self._error(429, "rate limited", "rate_limit_error", {"Retry-After": wait})
            if fault == "500":
                return self._error(500, "internal error", "server_error")
            if fault == "stall":
                time.sleep(served.stall_seconds)
            if fault == "malformed":
                data = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            last = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
            content = {
                "wrong_lang": last,
                "refusal": REFUSAL,
                "empty": "",
                "drop_code": re.sub(r"⟦\d+⟧", "", answer_for(body)),
            }.get(fault, None)
            if content is None:
                content = answer_for(body)
            self._json(
                200,
                {
                    "id": f"chatcmpl-{len(served.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "loopback"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": usage(body, content),
                },
            )

    return Handler


@contextmanager
def serve(served: Served | None = None) -> Iterator[Served]:
    served = served or Served()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--log", help="append each request body as a JSON line to this file")
    args = parser.parse_args()
    served = Served(delay=args.delay)
    served.log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    with serve(served) as s:
        print(s.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
