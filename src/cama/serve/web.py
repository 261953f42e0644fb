"""``cama web``: a web page (gradio, the ``[web]`` extra) for one model, chosen at start.

    pip install -e '.[web]'
    cama web --model results/lora/merged                       # http://127.0.0.1:7860
    cama web --model results/pretrain/model --adapter results/lora/adapter --preset lora

Three tabs share the decoding settings at the top of the page:

- **Instruction**: the instruction/input form of the seed's page; the answer streams in.
- **Chat**: a multi-turn conversation with an optional system prompt.
- **IE**: the prompt builder: a task, a label schema, a language and an output format make the
  prompt from the instruct stage's templates; the answer is parsed back into a table.

Every request joins the engine's running batch (its online interface), so several people on the
page at once are decoded together; the engine formats the turns with the tokenizer's chat template.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from cama.errors import CamaError, ConfigError

# name -> (label, minimum, maximum, step): the sliders, for the settings fields the engine has
SLIDERS = {
    "max_new_tokens": ("max new tokens", 1, 2048, 1),
    "temperature": ("temperature (0: greedy)", 0.0, 2.0, 0.05),
    "top_p": ("top p", 0.05, 1.0, 0.05),
    "top_k": ("top k (0: off)", 0, 200, 1),
    "repetition_penalty": ("repetition penalty", 1.0, 2.0, 0.05),
    "num_beams": ("beams", 1, 8, 1),
}
EXAMPLE = ("把下面的句子翻译成英文。", "知识图谱是一种结构化的知识表示方式。")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model folder: base, pretrained or merged")
    p.add_argument("--adapter", help="a LoRA adapter folder to load on --model")
    p.add_argument("--preset", help="decoding preset the page starts from (default: the engine's defaults)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-batch", type=int, default=16, help="requests decoded together (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from cama.serve.models import PRESETS, Settings, load_models

    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    adapters = [f"adapter={args.adapter}"] if args.adapter else []
    served = load_models(args.model, adapters=adapters, max_batch=args.max_batch, max_queue=256)
    chosen = served["adapter" if args.adapter else next(iter(served))]
    chosen.engine.start()
    try:
        launch(build(chosen, PRESETS[args.preset] if args.preset else Settings()), args.host, args.port, block=True)
    finally:
        chosen.engine.stop()
    return 0


def launch(demo, host: str, port: int, block: bool = False):
    """Start the page's server (no SSR, which needs node; no sharing link); returns gradio's launch result."""
    return demo.queue(default_concurrency_limit=None).launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, ssr_mode=False,
        share=False, footer_links=[])  # fmt: skip


def build(served, preset):
    """The gradio Blocks for one served model (its engine started)."""
    import gradio as gr

    from cama.chat import user_content
    from cama.generate import QueueFull
    from cama.instruct.ie import FORMATS, TASKS
    from cama.serve.ie import HEADERS, LANGS, IEQuery

    fields = {f.name for f in dataclasses.fields(preset)}
    names = [n for n in SLIDERS if n in fields]

    def settings_of(values) -> object:
        try:
            return dataclasses.replace(preset, **{n: type(getattr(preset, n))(v) for n, v in zip(names, values, strict=True)})
        except (CamaError, ValueError) as e:
            raise gr.Error(f"decoding settings: {e}") from None

    def stream(prompt, values):
        """(text so far, status) while the engine writes; the status says how it ended."""
        try:
            req = served.engine.submit(prompt, settings_of(values))
        except QueueFull:
            raise gr.Error("The model is busy; try again in a moment.") from None
        text = ""
        try:
            for piece in req:
                text += piece
                yield text, "generating…"
        finally:
            if not req.done:  # the page went away: free the engine's place
                req.cancel()
        gen = req.generation
        if gen.finish_reason == "error":
            raise gr.Error(f"generation failed: {gen.error}")
        yield gen.text, f"**{gen.finish_reason}**, {gen.completion_tokens} tokens"

    title = served.name + (f" (adapter {served.adapter.name} on {served.model_dir.name})" if served.adapter else "")
    with gr.Blocks(title=f"cama: {served.name}") as demo:
        gr.Markdown(f"## cama · {title}\n`{served.adapter or served.model_dir}`")
        with gr.Accordion("Decoding", open=False):
            with gr.Row():
                sliders = [gr.Slider(lo, hi, value=getattr(preset, n), step=step, label=label, elem_id=f"set-{n}")
                           for n in names for label, lo, hi, step in [SLIDERS[n]]]  # fmt: skip

        with gr.Tab("Instruction", elem_id="tab-instruction"):
            with gr.Row():
                with gr.Column():
                    instruction = gr.Textbox(label="Instruction", lines=3, elem_id="instruction", value=EXAMPLE[0])
                    input_ = gr.Textbox(label="Input (optional)", lines=3, elem_id="input", value=EXAMPLE[1])
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    output = gr.Textbox(label="Answer", lines=8, elem_id="output", interactive=False)
                    status = gr.Markdown(elem_id="status")

            def instruct(ins, inp, *values):
                if not ins.strip():
                    raise gr.Error("Write an instruction first.")
                yield from stream([{"role": "user", "content": user_content(ins, inp)}], values)

            go.click(instruct, [instruction, input_, *sliders], [output, status])

        with gr.Tab("Chat", elem_id="tab-chat"):
            system = gr.Textbox(label="System prompt (optional)", elem_id="system")
            chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=360)
            with gr.Row():
                message = gr.Textbox(label="Message", scale=4, elem_id="message")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            chat_status = gr.Markdown(elem_id="chat-status")
            clear = gr.Button("Clear", elem_id="clear")

            def chat(msg, history, sys_prompt, *values):
                if not msg.strip():
                    raise gr.Error("Write a message first.")
                history = [{"role": m["role"], "content": _text(m["content"])} for m in history or []]
                turns = ([{"role": "system", "content": sys_prompt}] if sys_prompt.strip() else []) + history
                turns.append({"role": "user", "content": msg})
                for text, state in stream(turns, values):
                    yield "", history + [turns[-1], {"role": "assistant", "content": text}], state

            for trigger in (send.click, message.submit):
                trigger(chat, [message, chatbot, system, *sliders], [message, chatbot, chat_status])
            clear.click(lambda: ([], ""), None, [chatbot, chat_status])

        with gr.Tab("IE", elem_id="tab-ie"):
            with gr.Row():
                task = gr.Dropdown(list(TASKS), value="ner", label="Task", elem_id="ie-task")
                lang = gr.Dropdown(list(LANGS), value="zh", label="Language", elem_id="ie-lang")
                fmt = gr.Dropdown(list(FORMATS), value="json", label="Output format", elem_id="ie-format")
            schema = gr.Textbox(label="Labels (EE: type: role, role; type: role)", value="人名, 地名, 组织机构",
                                elem_id="ie-labels")  # fmt: skip
            text = gr.Textbox(label="Text", lines=3, value="马云在杭州创办了阿里巴巴。", elem_id="ie-text")
            extract = gr.Button("Extract", variant="primary", elem_id="ie-extract")
            prompt_box = gr.Textbox(label="Prompt", lines=4, interactive=False, elem_id="ie-prompt")
            answer = gr.Textbox(label="Answer", lines=4, interactive=False, elem_id="ie-answer")
            ie_status = gr.Markdown(elem_id="ie-status")
            table = gr.Dataframe(headers=HEADERS["ner"], label="Parsed", interactive=False, elem_id="ie-table")

            def run_ie(t, lg, f, labels, sentence, *values):
                try:
                    query = IEQuery.from_text(t, labels, lg, f)
                except ConfigError as e:
                    raise gr.Error("; ".join(e.problems)) from None
                messages = query.messages(sentence)
                empty = gr.Dataframe(value=[], headers=HEADERS[query.task])
                for partial, state in stream(messages, values):
                    yield messages[0]["content"], partial, state, empty
                body, error = query.read(partial)
                verdict = f"format error: the answer does not parse as {query.fmt} ({error})" if error else (
                    f"{len(body)} rows" if body else "nothing found")  # fmt: skip
                yield messages[0]["content"], partial, f"{state} · {verdict}", gr.Dataframe(
                    value=body, headers=HEADERS[query.task])  # fmt: skip

            extract.click(run_ie, [task, lang, fmt, schema, text, *sliders], [prompt_box, answer, ie_status, table])
    return demo


def _text(content) -> str:
    """A chatbot message's content as text (gradio 6 may hand back a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
