"""An OpenAI-compatible HTTP API over the generation engine (FastAPI; ``cama serve`` runs it with uvicorn).

Endpoints, as the official ``openai`` client uses them:

- ``GET /v1/models``: every served name (a model, and each LoRA adapter with the model as ``parent``).
- ``POST /v1/chat/completions``: ``messages`` formatted by the tokenizer's chat template.
- ``POST /v1/completions``: a raw ``prompt`` (a string, or a list of strings), no template.

With ``"stream": true`` the answer comes as server-sent events (``data: {chunk}``), ending in
``data: [DONE]``; ``stream_options.include_usage`` adds a last chunk with ``usage``.

Decoding fields: ``max_tokens`` (``max_completion_tokens``), ``temperature`` (0 is greedy),
``top_p``, ``stop``, ``seed``, ``n``, and, as vLLM accepts them, ``top_k``,
``repetition_penalty`` and ``num_beams``. Each request carries its own settings into the
engine's running batch (continuous batching: a request joins at the engine's next step, and a
client that goes away frees its place at the step after). A field left out takes the server's preset
(``cama serve --preset``). ``logprobs``, tool calls and penalties other than 0 are refused with a
400 rather than ignored.

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and status:
400 a bad request (unparseable JSON, a bad field, a prompt longer than the context), 401 a
missing or wrong key, 404 an unknown model or path, 429 the queue is full (with
``Retry-After``), 500 the engine failed. None of them stops the server.

The key: when the environment variable named by ``api_key_env`` (``CAMA_API_KEY``) is set, every
request must carry ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cama.errors import CamaError
from cama.generate import QueueFull
from cama.serve.models import Served, Settings

log = logging.getLogger(__name__)

FINISH = {"eos": "stop", "stop": "stop", "length": "length"}  # engine -> OpenAI finish_reason


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# -- request bodies ----------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # as vLLM: unknown fields (user, metadata, ...) pass

    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0)] | None = None
    num_beams: Annotated[int, Field(ge=1, le=8)] | None = None
    stop: str | Annotated[list[str], Field(max_length=8)] | None = None
    seed: int | None = None
    n: Annotated[int, Field(ge=1, le=16)] = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    presence_penalty: Literal[0, 0.0] | None = None
    frequency_penalty: Literal[0, 0.0] | None = None
    logprobs: Literal[False] | None = None


class _Part(BaseModel):
    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_Part]

    def plain(self) -> dict:
        """``{"role", "content"}`` as the chat template reads it (developer is OpenAI's new name for system)."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatBody(_Body):
    messages: Annotated[list[_Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    top_logprobs: None = None
    tools: None = None


class CompletionBody(_Body):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=64)]
    echo: Literal[False] = False
    suffix: None = None


# -- the app -----------------------------------------------------------------------------------
def create_app(models: dict[str, Served], preset: Settings | None = None, max_tokens: int = 1024,
               api_key_env: str = "CAMA_API_KEY") -> FastAPI:  # fmt: skip
    """The ASGI app serving ``models`` (by name), whose engines the caller has started (``engine.start()``).

    ``preset``: the decoding settings a request's missing fields take. ``max_tokens``: the most
    new tokens one request may ask for. The key is read from ``api_key_env`` once, here.
    """
    preset = preset or Settings()
    key = os.environ.get(api_key_env) or None
    created = int(time.time())

    app = FastAPI(title="cama", summary="OpenAI-compatible API over cama's generation engine")
    app.state.models = models

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, e: RequestValidationError):
        errors = e.errors()
        loc = [str(x) for x in (errors[0].get("loc", ()) if errors else ()) if x != "body"]
        message = "; ".join(f"{'.'.join(str(x) for x in err['loc'] if x != 'body') or 'body'}: {err['msg']}"
                            for err in errors[:5])  # fmt: skip
        return APIError(400, message or "invalid request", param=".".join(loc) or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        code = "not_found" if e.status_code == 404 else None
        return APIError(e.status_code, str(e.detail), code=code).response()

    @app.exception_handler(Exception)
    async def _server_error(request: Request, e: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return APIError(500, f"internal error: {type(e).__name__}", type="server_error").response()

    if key is not None:
        app.add_middleware(_BearerKey, key=key)

    @app.get("/v1/models")
    async def list_models():
        data = [{"id": name, "object": "model", "created": created, "owned_by": "cama",
                 "root": str(s.adapter or s.model_dir), "parent": s.parent,
                 "max_model_len": s.context_length} for name, s in models.items()]  # fmt: skip
        return {"object": "list", "data": data}

    def prepare(body: _Body, prompts: list, new_tokens: int | None, param: str) -> tuple[Served, Settings, list]:
        """The served model, the settings and each prompt's token ids; APIError for what does not fit."""
        served = models.get(body.model)
        if served is None:
            raise APIError(404, f"The model `{body.model}` does not exist. Served: {', '.join(models)}",
                           param="model", code="model_not_found")  # fmt: skip
        new = new_tokens or min(preset.max_new_tokens, max_tokens)
        if new > max_tokens:
            raise APIError(400, f"max_tokens is {new}; this server allows at most {max_tokens}", param="max_tokens")
        fields = {k: getattr(body, k) for k in ("temperature", "top_p", "top_k", "repetition_penalty", "num_beams",
                                                "seed") if getattr(body, k) is not None}  # fmt: skip
        if body.stop is not None:
            fields["stop"] = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
        try:
            settings = dataclasses.replace(preset, max_new_tokens=new, **fields)
        except CamaError as e:
            raise APIError(400, str(e)) from None
        try:
            ids = [served.engine.encode(p) for p in prompts]
        except CamaError as e:
            raise APIError(400, str(e), param=param) from None
        limit, longest = served.context_length, max(map(len, ids))
        if longest + new > limit:
            raise APIError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                           f"{longest + new} tokens ({longest} in the {param}, {new} in the completion). "
                           "Please reduce the length of the prompt or of max_tokens.",
                           param=param, code="context_length_exceeded")  # fmt: skip
        return served, settings, ids

    def submit(served: Served, ids: list, settings: Settings, n: int, stream: bool) -> list:
        """One engine request per choice (each prompt n times, seeds apart); 429 when the queue is full.

        ``stream``: the answer goes out piece by piece; otherwise the engine decodes the text once, at the end.
        """
        reqs = []
        try:
            for prompt in ids:
                for k in range(n):
                    seeded = settings if settings.seed is None or k == 0 else dataclasses.replace(settings, seed=settings.seed + k)
                    reqs.append(served.engine.submit(prompt, seeded, stream=stream))
        except QueueFull as e:
            for r in reqs:
                r.cancel()
            raise APIError(429, f"the server is busy: {e}", type="rate_limit_exceeded", code="rate_limit_exceeded",
                           headers={"Retry-After": "1"}) from None  # fmt: skip
        return reqs

    def check(gen) -> None:
        if gen.finish_reason == "error":
            raise APIError(500, f"generation failed: {gen.error}", type="server_error")

    async def events(reqs: list) -> AsyncIterator[tuple[int, Any]]:
        """(choice index, text piece or the final Generation) from every request, as they come."""
        if len(reqs) == 1:  # the usual case: no task and queue in between
            req = reqs[0]
            try:
                async for piece in req.astream():
                    yield 0, piece
                check(req.generation)
                yield 0, req.generation
            finally:
                if not req.done:  # a client gone mid-stream: free the engine's slot at its next step
                    req.cancel()
            return
        merged: asyncio.Queue = asyncio.Queue()

        async def pump(i, req):
            async for piece in req.astream():
                await merged.put((i, piece))
            await merged.put((i, req.generation))

        tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(reqs)]
        try:
            for _ in range(len(reqs)):
                while isinstance((event := await merged.get())[1], str):
                    yield event
                check(event[1])
                yield event
        finally:
            for t in tasks:
                t.cancel()
            for r in reqs:  # a client gone mid-stream: free the engine's slot at its next step
                if not r.done:
                    r.cancel()

    async def answer(body: _Body, served: Served, reqs: list, prompt_tokens: list, object_: str, choice, delta):
        rid = f"{'chatcmpl' if object_.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}"
        head = {"id": rid, "created": int(time.time()), "model": body.model}

        def usage(gens) -> dict:
            completion = sum(g.completion_tokens for g in gens if g is not None)
            return {"prompt_tokens": sum(prompt_tokens), "completion_tokens": completion,
                    "total_tokens": sum(prompt_tokens) + completion}  # fmt: skip

        if not body.stream:
            try:
                gens = [await reqs[0].aresult()] if len(reqs) == 1 else await asyncio.gather(*(r.aresult() for r in reqs))
            finally:
                for r in reqs:
                    if not r.done:
                        r.cancel()
            for g in gens:
                check(g)
            return {**head, "object": object_, "choices": [choice(i, g) for i, g in enumerate(gens)],
                    "usage": usage(gens)}  # fmt: skip

        chunk_object = f"{object_}.chunk" if object_.startswith("chat") else object_

        async def sse() -> AsyncIterator[str]:
            gens: list = [None] * len(reqs)
            try:
                for i in range(len(reqs)):
                    if (first := delta(i, None, None, start=True)) is not None:
                        yield _sse({**head, "object": chunk_object, "choices": [first]})
                async for i, event in events(reqs):
                    if isinstance(event, str):
                        yield _sse({**head, "object": chunk_object, "choices": [delta(i, event, None)]})
                    else:
                        gens[i] = event
                        finish = FINISH.get(event.finish_reason, "stop")
                        yield _sse({**head, "object": chunk_object, "choices": [delta(i, None, finish)]})
                if (body.stream_options or {}).get("include_usage"):
                    yield _sse({**head, "object": chunk_object, "choices": [], "usage": usage(gens)})
            except APIError as e:  # the client raises on a chunk with an "error" key
                yield _sse({"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.code}})
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatBody):
        messages = [m.plain() for m in body.messages]
        served, settings, ids = prepare(body, [messages], body.max_completion_tokens or body.max_tokens, "messages")
        reqs = submit(served, ids, settings, body.n, body.stream)

        def choice(i, g):
            return {"index": i, "message": {"role": "assistant", "content": g.text},
                    "finish_reason": FINISH.get(g.finish_reason, "stop"), "logprobs": None}  # fmt: skip

        def delta(i, text, finish, start=False):
            if start:
                return {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            return {"index": i, "delta": {} if text is None else {"content": text}, "finish_reason": finish}

        return await answer(body, served, reqs, [len(ids[0])], "chat.completion", choice, delta)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        served, settings, ids = prepare(body, prompts, body.max_tokens, "prompt")
        reqs = submit(served, ids, settings, body.n, body.stream)

        def choice(i, g):
            return {"index": i, "text": g.text, "finish_reason": FINISH.get(g.finish_reason, "stop"), "logprobs": None}

        def delta(i, text, finish, start=False):
            if start:
                return None
            return {"index": i, "text": text or "", "finish_reason": finish, "logprobs": None}

        return await answer(body, served, reqs, [len(x) for x in ids], "text_completion", choice, delta)

    return app


class _BearerKey:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <key>``, or gets a 401.

    Plain ASGI rather than starlette's ``BaseHTTPMiddleware`` (``@app.middleware``), which
    costs every request a task group and a pair of memory streams.
    """

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            value = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            scheme, _, token = value.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                response = APIError(401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key")
                await response.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
