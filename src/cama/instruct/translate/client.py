"""The API client: any OpenAI-compatible ``/v1/chat/completions``, through the ``openai`` SDK.

One :class:`ChatClient` per run. Each ``complete(messages)``:

1. looks the request up in the cache (``cache.py``): a hit costs nothing and sends nothing;
2. reserves the request's worst case in the budget ledger, or returns ``error="budget"``;
3. waits for a slot: at most ``concurrency`` requests in flight, and sliding one-minute
   windows of ``requests_per_minute`` and ``tokens_per_minute`` (estimated before, corrected
   with the answer's ``usage`` after);
4. sends it with the SDK's own retries off (``max_retries=0``), so that every retry is
   counted here: 429, 5xx, timeouts, dropped connections and malformed bodies are retried up
   to ``max_retries`` times, after ``Retry-After`` (or ``retry-after-ms``) when the server
   gives one, else after ``backoff_seconds · 2^attempt`` with ±25 % jitter, capped at
   ``max_backoff_seconds``; other 4xx are not retried;
5. commits the answer to the cache with its usage and cost, replacing the reservation.

The API key is read from the environment variable named by ``api_key_env``; it never
reaches a log, an output or the cache (requests are stored without headers).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass, field

from cama.errors import ConfigError
from cama.instruct.translate.cache import Cache, request_key

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 8  # tokens a chat format adds per message, at most (OpenAI's is 3-4)


@dataclass(frozen=True)
class ClientSettings:
    """The ``instruct.translate`` section, as the client needs it."""

    base_url: str | None
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 2048
    max_budget_tokens: int | None = None
    max_budget_cost: float | None = None
    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    @classmethod
    def from_config(cls, s: dict) -> ClientSettings:
        if not s.get("model"):
            raise ConfigError(
                "instruct.translate.model: the model to ask is required with provider openai"
            )
        return cls(
            base_url=s["base_url"],
            model=s["model"],
            api_key_env=s["api_key_env"],
            concurrency=s["concurrency"],
            requests_per_minute=s["requests_per_minute"],
            tokens_per_minute=s["tokens_per_minute"],
            timeout_seconds=s["timeout_seconds"],
            max_retries=s["max_retries"],
            backoff_seconds=s["backoff_seconds"],
            max_backoff_seconds=s["max_backoff_seconds"],
            temperature=s["temperature"],
            max_tokens=s["max_tokens"],
            max_budget_tokens=s["budget"]["tokens"],
            max_budget_cost=s["budget"]["cost"],
            input_per_1k=s["prices"]["input_per_1k"],
            output_per_1k=s["prices"]["output_per_1k"],
        )

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in / 1000 * self.input_per_1k + tokens_out / 1000 * self.output_per_1k


@dataclass
class Outcome:
    content: str | None = None
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False
    error: str | None = (
        None  # budget | rate_limited | server_error | timeout | connection | malformed | http_<status>
    )


@dataclass
class ClientStats:
    requests: int = 0  # attempts sent, retries included
    answers: int = 0
    cache_hits: int = 0
    retries: int = 0
    budget_refusals: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    errors: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 4) if lat else None

        return {
            "requests": self.requests,
            "answers": self.answers,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "budget_refusals": self.budget_refusals,
            "errors": dict(self.errors),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": round(self.cost, 6),
            "latency_seconds": {
                "p50": pct(50),
                "p90": pct(90),
                "p99": pct(99),
                "max": lat[-1] if lat else None,
            },
        }


class Window:
    """A sliding one-minute window: ``acquire(n)`` waits until n more units fit under ``limit``."""

    def __init__(self, limit: float | None, span: float = 60.0):
        self.limit, self.span = limit, span
        self.events: collections.deque[list] = collections.deque()  # [time, amount]
        self.lock = asyncio.Lock()

    def _used(self, now: float) -> float:
        while self.events and self.events[0][0] <= now - self.span:
            self.events.popleft()
        return sum(e[1] for e in self.events)

    async def acquire(self, amount: float) -> list | None:
        if self.limit is None:
            return None
        amount = min(
            amount, self.limit
        )  # a request larger than the limit waits for an empty window
        async with self.lock:
            while True:
                now = time.monotonic()
                if self._used(now) + amount <= self.limit:
                    event = [now, amount]
                    self.events.append(event)
                    return event
                await asyncio.sleep(max(0.01, self.events[0][0] + self.span - now))

    @staticmethod
    def correct(event: list | None, amount: float) -> None:
        if event is not None:
            event[1] = amount


def estimate_tokens(messages: list[dict]) -> int:
    """An upper bound on prompt tokens: a BPE token covers at least one byte."""
    return sum(len(m["content"].encode("utf-8")) + MESSAGE_OVERHEAD for m in messages)


def retry_after(error: Exception) -> float | None:
    """Seconds the server asked to wait (Retry-After: seconds or an HTTP date; retry-after-ms)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class ChatClient:
    """Cached, rate-limited, budgeted chat completions; see the module docstring."""

    def __init__(self, settings: ClientSettings, cache: Cache):
        import openai

        self.settings, self.cache = settings, cache
        key = os.environ.get(settings.api_key_env)
        if key is None:
            raise ConfigError(
                f"instruct.translate.api_key_env: the environment variable {settings.api_key_env} is not set "
                "(for a server without keys, such as a local vLLM, set it to any value)"
            )
        self.openai = openai
        self.client = openai.AsyncOpenAI(
            api_key=key, base_url=settings.base_url, max_retries=0, timeout=settings.timeout_seconds
        )
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.rpm = Window(settings.requests_per_minute)
        self.tpm = Window(settings.tokens_per_minute)
        self.stats = ClientStats()

    def params(self, max_tokens: int | None = None, temperature: float | None = None) -> dict:
        return {
            "temperature": self.settings.temperature if temperature is None else temperature,
            "max_tokens": min(max_tokens or self.settings.max_tokens, self.settings.max_tokens),
        }

    async def complete(self, messages: list[dict], params: dict) -> Outcome:
        s = self.settings
        key = request_key(s.model, messages, params)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return Outcome(
                hit.content, hit.finish_reason, hit.tokens_in, hit.tokens_out, cached=True
            )
        est_in = estimate_tokens(messages)
        worst = est_in + params["max_tokens"]
        reservation = self.cache.reserve(
            worst, s.cost(est_in, params["max_tokens"]), s.max_budget_tokens, s.max_budget_cost
        )
        if reservation is None:
            self.stats.budget_refusals += 1
            return Outcome(error="budget")
        stored = False
        try:
            async with self.slots:
                for attempt in range(s.max_retries + 1):
                    await self.rpm.acquire(1)
                    tpm_event = await self.tpm.acquire(worst)
                    self.stats.requests += 1
                    t0 = time.perf_counter()
                    try:
                        resp = await self.client.chat.completions.create(
                            model=s.model, messages=messages, **params
                        )
                        choice = resp.choices[0]
                        content, finish = choice.message.content, choice.finish_reason
                        usage = resp.usage
                        tokens_in = usage.prompt_tokens if usage else est_in
                        tokens_out = (
                            usage.completion_tokens if usage else len((content or "").encode())
                        )
                    except Exception as e:  # noqa: BLE001 - sorted into retryable or not below
                        kind = self._kind(e)
                        self.stats.errors[kind] += 1
                        Window.correct(tpm_event, 0)
                        if kind.startswith("http_") or attempt == s.max_retries:
                            log.warning("request failed for good (%s): %s", kind, type(e).__name__)
                            return Outcome(error=kind)
                        self.stats.retries += 1
                        delay = retry_after(e)
                        if delay is None:
                            delay = s.backoff_seconds * 2**attempt * random.uniform(0.75, 1.25)
                        await asyncio.sleep(min(delay, s.max_backoff_seconds))
                        continue
                    self.stats.latencies.append(time.perf_counter() - t0)
                    Window.correct(tpm_event, tokens_in + tokens_out)
                    cost = s.cost(tokens_in, tokens_out)
                    self.cache.put(
                        key,
                        s.model,
                        {"messages": messages, "params": params},
                        content,
                        finish,
                        tokens_in,
                        tokens_out,
                        cost,
                        reservation,
                    )
                    stored = True
                    self.stats.answers += 1
                    self.stats.tokens_in += tokens_in
                    self.stats.tokens_out += tokens_out
                    self.stats.cost += cost
                    return Outcome(content, finish, tokens_in, tokens_out)
        finally:
            if not stored:
                self.cache.release(reservation)
        return Outcome(error="exhausted")  # not reached: the loop returns

    def _kind(self, e: Exception) -> str:
        o = self.openai
        if isinstance(e, o.RateLimitError):
            return "rate_limited"
        if isinstance(e, o.APITimeoutError):
            return "timeout"
        if isinstance(e, o.APIConnectionError):
            return "connection"
        if isinstance(e, o.APIStatusError):
            if e.status_code in (408, 409, 425):  # request timeout, conflict, too early: retry
                return "timeout"
            return "server_error" if e.status_code >= 500 else f"http_{e.status_code}"
        if isinstance(
            e, (ValueError, TypeError, AttributeError, IndexError, o.APIResponseValidationError)
        ):
            return "malformed"  # a body that is not a chat completion
        raise e

    async def close(self) -> None:
        await self.client.close()
