"""``cama chat``: talk to a model in the terminal, tokens printed as they come.

    cama chat --model results/lora/merged
    cama chat --model results/pretrain/model --adapter results/lora/adapter --preset lora

Lines starting with ``/`` are commands (``/help`` lists them); anything else is your turn.
In IE mode (``/ie ner zh json 人名, 地名``) each line is a text to extract from: the prompt is
built from the instruct stage's templates, and the answer is parsed and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys

from cama.errors import ConfigError

HELP = """commands:
  /set NAME VALUE   change a decoding setting (/set temperature 0.3); /set alone shows them all
  /system TEXT      set the system prompt (/system alone clears it); the turns so far stay
  /reset            forget the turns so far (the system prompt stays)
  /save PATH        write the conversation and the settings to PATH as JSON
  /ie TASK LANG FORMAT LABELS   IE mode: TASK ner|re|ee, LANG zh|en, FORMAT json|tuple|lines,
                    LABELS "人名, 地名" (EE: "地震: 震级, 地点; 出售: 买方"); then each line is a text
  /chat             leave IE mode
  /help             this list
  /quit             leave (Ctrl-D too)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model folder: base, pretrained or merged")
    p.add_argument("--adapter", help="a LoRA adapter folder to load on --model")
    p.add_argument("--preset", help="decoding preset to start from (default: the engine's defaults)")
    p.add_argument("--system", help="a system prompt to start with")


def run(args: argparse.Namespace) -> int:
    from cama.serve.models import PRESETS, Settings, load_models

    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    served = load_models(args.model, adapters=[f"adapter={args.adapter}"] if args.adapter else [])
    engine = served["adapter" if args.adapter else next(iter(served))].engine
    return Terminal(engine, PRESETS[args.preset] if args.preset else Settings(), args.system).loop()


class Terminal:
    """The read-eval-print loop; ``out`` is where everything is written (stdout)."""

    prompt = ">>> "

    def __init__(self, engine, settings, system: str | None = None, out=None):
        from cama.serve.session import Session

        self.session = Session(engine, settings, system)
        self.out = out or sys.stdout
        self.ie = None  # an IEQuery while in IE mode

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def loop(self) -> int:
        self.say("cama chat: type a message, /help for commands, /quit to leave")
        while True:
            try:
                line = input(self.prompt if self.ie is None else f"ie:{self.ie.task}> ")
            except EOFError:
                self.say()
                return 0
            except KeyboardInterrupt:
                self.say("^C")
                continue
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if self.command(line) == "quit":
                        return 0
                elif self.ie is not None:
                    self.extract(line)
                else:
                    self.reply(line)
            except ConfigError as e:
                self.say("error: " + "; ".join(e.problems))
            except KeyboardInterrupt:
                self.say("\n[interrupted]")

    def reply(self, line: str) -> None:
        gen = self.session.ask(line, on_delta=lambda d: self.say(d, end=""))
        self.say()
        self.say(f"[{gen.finish_reason}, {gen.completion_tokens} tokens]")

    def extract(self, text: str) -> None:
        from cama.serve.ie import HEADERS, format_table

        messages = self.ie.messages(text)
        self.say(f"[prompt] {messages[0]['content']}")
        self.say("[answer] ", end="")
        callback = lambda _i, delta: self.say(delta, end="")  # noqa: E731
        gen = self.session.engine.generate([messages], self.session.settings, on_token=callback)[0]
        self.say()
        body, error = self.ie.read(gen.text)
        if error is not None:
            self.say(f"[format error] the answer does not parse as {self.ie.fmt}: {error}")
        elif not body:
            self.say("[none] the model found nothing of these labels")
        else:
            self.say(format_table(HEADERS[self.ie.task], body))

    def command(self, line: str) -> str | None:
        from cama.serve.session import set_field, settings_dict

        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name in ("quit", "exit", "q"):
            return "quit"
        if name == "help":
            self.say(HELP)
        elif name == "set":
            if not rest:
                for key, value in settings_dict(self.session.settings).items():
                    self.say(f"  {key} = {json.dumps(value, ensure_ascii=False)}")
                return None
            key, _, value = rest.partition(" ")
            self.session.settings = set_field(self.session.settings, key, value)
            self.say(f"{key} = {json.dumps(settings_dict(self.session.settings)[key], ensure_ascii=False)}")
        elif name == "system":
            self.session.system = rest or None
            self.say(f"system prompt {'set' if rest else 'cleared'}")
        elif name == "reset":
            self.session.reset()
            self.say("conversation reset")
        elif name == "save":
            if not rest:
                raise ConfigError("/save needs a path")
            path = self.session.save(rest)
            self.say(f"saved {len(self.session.messages())} messages to {path}")
        elif name == "ie":
            self.ie = _ie_query(rest)
            self.say(f"IE mode: {self.ie.task}, {self.ie.lang}, {self.ie.fmt}, labels {self.ie.labels}; "
                     "each line is a text (/chat to leave)")  # fmt: skip
        elif name == "chat":
            self.ie = None
            self.say("chat mode")
        else:
            raise ConfigError(f"unknown command /{name} (/help lists them)")
        return None


def _ie_query(rest: str):
    from cama.serve.ie import IEQuery

    parts = rest.split(None, 3)
    if len(parts) < 4:
        raise ConfigError("/ie needs TASK LANG FORMAT LABELS, e.g. /ie ner zh json 人名, 地名")
    task, lang, fmt, schema = parts
    return IEQuery.from_text(task, schema.strip().strip("\"'"), lang, fmt)
