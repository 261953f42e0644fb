"""cama's prompt format: one chat template for training, evaluation and serving.

Every instruction record is a conversation (``messages``: an optional system turn, then user and
assistant turns). A single-turn instruction/input/response record is one user turn made by
``user_content(instruction, input)`` and one assistant turn. The template below renders both,
and it is saved into every tokenizer the LoRA stage writes (``tokenizer.chat_template``), so
``apply_chat_template``, vLLM and ``cama serve`` format prompts exactly as training did.

Rendered, a conversation reads::

    <s>### System:
    You are a helpful assistant.

    ### User:
    Translate into Chinese: good morning

    ### Assistant:
    早上好</s>

- BOS once at the start; every assistant turn ends with EOS, so the model learns to stop
  (the seed's run-on generations came from a missing EOS).
- Assistant content and its EOS are wrapped in ``{% generation %}``, so
  ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks exactly the tokens the
  loss falls on.
- ``add_generation_prompt=True`` ends the prompt with the assistant header, ready to generate.

The headers are plain text that the base tokenizer already has: no new tokens, so the embedding
matrix and the published weight diff keep their shapes.
"""

from __future__ import annotations

SYSTEM_HEADER = "### System:\n"
USER_HEADER = "### User:\n"
ASSISTANT_HEADER = "### Assistant:\n"
TURN_SEPARATOR = "\n\n"

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- '" + SYSTEM_HEADER.replace("\n", "\\n") + "' + message['content'] + '\\n\\n' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '" + USER_HEADER.replace("\n", "\\n") + "' + message['content'] + '\\n\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '" + ASSISTANT_HEADER.replace("\n", "\\n") + "' -}}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{{- '\\n\\n' if not loop.last else '' -}}"
    "{%- else -%}"
    "{{- raise_exception('unknown role: ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + ASSISTANT_HEADER.replace("\n", "\\n") + "' -}}{%- endif -%}"
)


def user_content(instruction: str, input: str | None = None) -> str:
    """The user turn of a single-turn record: the instruction, then its input after a blank line."""
    instruction = instruction.strip()
    return f"{instruction}\n\n{input.strip()}" if input and input.strip() else instruction


def with_chat_template(tokenizer):
    """Give ``tokenizer`` cama's chat template (in place) and return it.

    Base and pretrained tokenizers (LLaMA-1 has none) get it here, so every model the pipeline
    makes is prompted the same way.
    """
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
