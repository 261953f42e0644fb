"""Use the model: ``cama serve`` (an OpenAI-compatible API), ``cama chat`` (a terminal) and ``cama web``.

All three sit on the one generation engine (``cama.generate``) and format prompts with the
tokenizer's chat template (``cama.chat``); none decodes or formats a prompt itself.

- ``models``: the models a front end serves, by name (a model folder, LoRA adapters on it).
- ``openai_api``: the ASGI app (FastAPI) that speaks OpenAI's protocol; ``cli`` runs it with
  uvicorn, or builds vLLM's own server command (``vllm_command``).
- ``terminal``: ``cama chat``; ``web``: ``cama web`` (gradio, the ``[web]`` extra);
  ``ie``: the IE prompt helper both of them use, on the instruct stage's templates and parsers.
"""
