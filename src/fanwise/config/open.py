"""``open_run``: a ``RunConfig`` made into a run, the same way for every front door.

It builds, in order and before any request: the price table (Batch API prices for the batch
engine), the budget (``max_cost``), the model (or a router over several providers' models), and
the run in the journal with its store. ``OpenRun.engine`` then gives the engine with the
dispatch the config names (live, the Batch API, Ray). ``async with`` closes the model, and
marks the run interrupted when the work raises; ``finish`` closes it with its status.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fanwise.budget import Budget
from fanwise.config.run_config import RunConfig
from fanwise.endpoints import EndpointPool
from fanwise.engine import Engine
from fanwise.events import Observer, fan_out
from fanwise.factory import (
    ConfigError,
    endpoint_label,
    env_base_url,
    get_limiter,
    get_model,
    get_settings,
)
from fanwise.journal import Content, CostStore, Journal, JournalError, JournalStore
from fanwise.journal.content import meta_shape
from fanwise.limits import Limiter, Unlimited
from fanwise.models.base import Completion, Model, Request
from fanwise.models.providers import KEYS, implied_provider, key_for
from fanwise.models.router import ProviderRouter
from fanwise.models.settings import ModelSettings
from fanwise.paths import fanwise_home, journal_path, private_dir
from fanwise.prices import Price, PriceError, PriceTable, cost_text, load_prices, parse_price_flag
from fanwise.retry import RetryBudget, RetryPolicy
from fanwise.run_info import RunInfo

if TYPE_CHECKING:
    from fanwise.batchapi import JournalLedger

Notify = Callable[[str], None]


class OpenRun:
    """A run being made: its config, model, prices, budget, store and place in the journal.

    Without a journal, ``journal`` and ``run_id`` are None and the store only counts the cost.
    """

    def __init__(
        self,
        config: RunConfig,
        model: Model,
        *,
        owned: bool,
        prices: PriceTable,
        budget: Budget | None,
        store: CostStore,
        journal: Journal | None,
        run_id: int | None,
        endpoint: str,
    ) -> None:
        self.config = config
        self.model = model
        self.owned = owned  # a model the caller gave is the caller's to close
        self.prices = prices
        self.budget = budget
        self.store = store
        self.journal = journal
        self.run_id = run_id
        self.endpoint = endpoint
        self.finished = False
        self.interrupt_reason: str | None = "cancelled"
        """The reason journaled when the work is cancelled; None: the caller marks the run
        however it ends (``stop``), as the CLI does once it knows what stopped it."""

    @property
    def failed_closed(self) -> bool:
        """The journal failed and the run stopped sending (``on_journal_error="stop"``)."""
        return isinstance(self.store, JournalStore) and self.store.failure is not None

    @property
    def cost(self) -> float:
        """What this run's calls cost so far (cached and reused calls cost nothing)."""
        return self.store.spent

    @property
    def resume_command(self) -> str | None:
        """``fanwise resume RUN`` (with its journal), or None when there is nothing to resume."""
        if self.journal is None or self.run_id is None:
            return None
        if self.config.journal_content == "meta":
            return None  # no prompt kept to send again, no answer to reuse
        command = f"fanwise resume {self.run_id}"
        if self.config.journal_path:
            command = f"{command} --journal {shlex.quote(self.config.journal_path)}"
        return command

    def price(self, completion: Completion) -> float | None:
        """The cost of one completion, for the live view."""
        return self.prices.cost(completion.model, completion.usage)

    def ledger(self) -> JournalLedger | None:
        """Where the batch engine keeps its batches for a resume: none without a journal."""
        if self.journal is None or self.run_id is None:
            return None
        from fanwise.batchapi import JournalLedger  # loads the openai SDK: only when used

        return JournalLedger(self.journal, self.run_id)

    def engine(self, *observers: Observer | None, note: Notify | None = None) -> Engine:
        """The engine the config asks for, over this run's model, store and budget; events go
        to ``observers`` and the budget (``note``: lines the auto engine says as it switches)."""
        return build_engine(
            self.config,
            self.model,
            observer=fan_out(*observers, self.budget),
            store=self.store,
            admit=self.budget.admit if self.budget else None,
            ledger=self.ledger,
            limiter=None if self.owned else Unlimited(),
            note=note,
        )

    def info(self) -> RunInfo:
        """The run and its cost, as results report them."""
        budget = self.budget
        return RunInfo(
            id=self.run_id,
            journal=None if self.journal is None else str(self.journal.path),
            resume=self.resume_command,
            cost_usd=self.store.spent,
            unpriced_calls=self.store.unpriced,
            unknown=cost_text(0.0, self.store.unpriced_models) if self.store.unpriced else None,
            prices_taken=self.prices.taken,
            max_usd=None if budget is None else budget.limit,
            not_sent_for_budget=0 if budget is None else budget.refused,
        )

    def finish(
        self,
        status: str,
        *,
        reason: str | None = None,
        summary: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        """Close the run in the journal with its status (``unrecorded`` when the journal failed
        closed) and cost; a ``sqlite3.Error`` from that last write is the caller's to say."""
        if self.finished:
            return
        self.finished = True
        if self.journal is None or self.run_id is None:
            return
        if self.failed_closed:
            status = "unrecorded"
        summary = {**(summary or {}), "cost_usd": round(self.cost, 6)}
        if "shape" in summary and "cost" not in summary:  # what show --json prints again
            summary["cost"] = self.info().to_dict()["cost"]
        if self.journal.content is Content.META and "shape" in summary:
            summary["shape"] = meta_shape(summary["shape"])  # no prompt or answer text
        try:
            self.journal.finish_run(
                self.run_id, status, reason=reason, summary=summary, total=total
            )
        finally:
            self.journal.close()

    def stop(self, reason: str) -> None:
        """Mark the run interrupted (every call settled so far is kept for a resume)."""
        if self.finished:
            return
        self.finished = True
        if self.journal is not None and self.run_id is not None:
            try:
                self.journal.finish_run(self.run_id, "interrupted", reason=reason)
            finally:
                self.journal.close()

    async def __aenter__(self) -> OpenRun:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        try:
            if error is not None and self.interrupt_reason is not None:
                cancelled = isinstance(error, asyncio.CancelledError | KeyboardInterrupt)
                why = self.interrupt_reason if cancelled else f"error: {type(error).__name__}"
                self.stop(why)
        finally:
            if self.owned:
                await self.model.aclose()


def open_run(
    config: RunConfig,
    *,
    kind: str,
    topic: str,
    spec: Mapping[str, Any],
    total: int | None = None,
    resume: int | None = None,
    model: Model | None = None,
    models: Iterable[str] = (),
    priced_model: str | None = None,
    lines: Mapping[int, int] | None = None,
    environ: Mapping[str, str] = os.environ,
    notify: Notify | None = None,
) -> OpenRun:
    """Everything a run needs before its first request, or a ``ConfigError`` saying what cannot
    work; ``async with`` it for the work.

    ``model`` is a caller's ready model (its limits and closing are the caller's). ``models``
    names the other models a plan asks (a router then speaks to each one's provider).
    ``priced_model``, when every call uses one, is checked against the price table, so that a
    budget refuses to start rather than refuse every call. ``spec`` is what a resume needs
    besides the config (the plan, the settings); the config is added to it. ``resume`` reopens
    that run. ``lines`` is a batch's map of call index to input line, journaled with each call.
    """
    config = config.started()
    prices = run_prices(config, environ)
    budget = run_budget(config, prices, priced_model, environ)
    owned = model is None
    if model is None:
        model = with_router(config, build_model(config, environ), models, environ)
    check_batch_key(config, environ)
    where = (
        model.name
        if not owned
        else endpoint_label(
            config.provider,
            api=config.api,
            base_url=config.base_url or env_base_url(config.provider, environ),
            seed=config.seed,
        )
    )
    if not config.journal and not config.cache:
        return OpenRun(
            config, model, owned=owned, prices=prices, budget=budget,
            store=CostStore(prices=prices), journal=None, run_id=None, endpoint=where,
        )  # fmt: skip
    journal = _open_journal(config, environ, notify)
    spec = {**spec, "config": config.to_dict()}
    if resume is None:
        run_id = journal.start_run(kind, topic, spec, endpoint=where, total=total)
    else:
        run_id = resume
        journal.reopen_run(run_id)
    store = JournalStore(
        journal,
        run_id,
        prices=prices,
        endpoint=where,
        resume=resume is not None,
        cache=config.cache,
        lines=lines,
        on_error="continue" if config.on_journal_error == "continue" else "stop",
    )
    return OpenRun(
        config, model, owned=owned, prices=prices, budget=budget, store=store,
        journal=journal, run_id=run_id, endpoint=where,
    )  # fmt: skip


def run_settings(
    config: RunConfig,
    plan_model: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ModelSettings:
    """What every call asks with: the config's model, effort and output cap over a plan's
    ``[model]`` table, over the defaults, on the endpoint its provider speaks (and the cap in
    the field its server honours)."""
    return get_settings(
        config.model,
        config.reasoning_effort,
        plan_model,
        config.prompt_api,
        config.provider,
        max_output_tokens=config.max_output_tokens,
        base_url=config.server or env_base_url(config.provider, environ),
    )


def run_prices(config: RunConfig, environ: Mapping[str, str] = os.environ) -> PriceTable:
    """The built-in prices under the user's file and the config's; the Batch API's half for the
    batch engine (a workflow's one live synthesis call too)."""
    user = [fanwise_home(environ) / "prices.toml"]
    if config.prices:
        if not Path(config.prices).is_file():
            raise ConfigError("prices", f"{config.prices}: no such file")
        user.append(Path(config.prices))
    try:
        prices = load_prices(*user)
    except PriceError as exc:  # the user's own prices.toml is named as the file it is
        home = str(exc).startswith(str(user[0]))
        raise ConfigError("prices_file" if home else "prices", str(exc)) from None
    try:
        given = dict(parse_price_flag(text) for text in config.price)
    except PriceError as exc:
        raise ConfigError("price", str(exc)) from None
    if given:  # one by one, over the files (the last wins)
        prices = PriceTable(given).over(prices)
    if config.engine == "batch":
        # Imported here: the batchapi package loads the openai SDK (0.5 s and 23 MB at every
        # start otherwise; docs/benchmarks.md).
        from fanwise.batchapi.prices import batch_prices

        prices = batch_prices(prices)
    return prices


def run_budget(
    config: RunConfig,
    prices: PriceTable,
    priced_model: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Budget | None:
    """The ``max_cost`` budget; the offline model is priced as ``offline`` whatever it is asked."""
    if config.max_cost is None:
        return None
    offline = config.provider == "offline"

    def price_of(request: Request) -> Price | None:
        return prices.price("offline" if offline else request.model)

    if priced_model is not None and price_of(Request.text("", model=priced_model)) is None:
        error = ConfigError(
            "max_cost",
            f"model {priced_model!r} has no price, so the budget cannot bound it; give one (US "
            f"dollars per 1M tokens) in {fanwise_home(environ) / 'prices.toml'} or a prices "
            "file",
        )
        error.model = priced_model  # type: ignore[attr-defined]  # for the CLI's words
        raise error
    patient = config.engine == "live"  # a batch's calls go at once: no holding them
    return Budget(config.max_cost, prices, price_of=price_of, patient=patient)


def build_limiter(config: RunConfig, environ: Mapping[str, str] = os.environ) -> Limiter:
    """The rpm/tpm buckets; for every real provider also the adaptive limits, unless off."""
    return get_limiter(
        config.provider, rpm=config.rpm, tpm=config.tpm, adapt=config.adapt, environ=environ
    )


def build_model(config: RunConfig, environ: Mapping[str, str] = os.environ) -> Model:
    """The model the config names (OpenAI's Batch API needs the SDK's files and batches)."""
    sdk = config.engine in ("batch", "auto") and config.provider == "openai"
    return get_model(
        config.provider,
        base_url=config.base_url,
        api=config.api,  # type: ignore[arg-type]  # checked by RunConfig
        transport="sdk" if sdk else config.transport,  # type: ignore[arg-type]
        endpoints=config.endpoints,
        limiter=lambda: build_limiter(config, environ),
        offline=config.offline,
        environ=environ,
    )


def with_router(
    config: RunConfig, model: Model, models: Iterable[str], environ: Mapping[str, str]
) -> Model:
    """``model``, or a router over it when ``models`` (a plan's per-question models) name other
    providers too: each provider then gets its own model and its own limits."""
    resolved = config.provider
    others = {p for p in map(implied_provider, models) if p is not None} - {resolved}
    if not others or resolved == "offline":
        return model
    if config.engine != "live" or config.endpoints:
        raise ConfigError(
            "engine",
            f"the plan asks {', '.join(sorted(others))} besides {resolved}: several providers "
            "in one run need the live engine, without several endpoints",
        )

    def make_model(name: str) -> Model:
        if name == resolved:
            return model
        return get_model(name, transport=config.transport, environ=environ)  # type: ignore[arg-type]

    router = ProviderRouter(
        resolved,
        make_model,
        lambda name: get_limiter(
            name, rpm=config.rpm, tpm=config.tpm, adapt=config.adapt, environ=environ
        ),
    )
    for name in sorted(others):  # a missing key is said now, before anything is paid for
        router.model_for(name)
    return router


def build_engine(
    config: RunConfig,
    model: Model,
    *,
    observer: Observer | None = None,
    store: CostStore | None = None,
    admit: Callable[[Any], Awaitable[None] | None] | None = None,
    ledger: Callable[[], JournalLedger | None] = lambda: None,
    limiter: Limiter | None = None,
    note: Notify | None = None,
) -> Engine:
    """The engine for ``config`` over ``model``: its dispatch live, the Batch API, Ray, or the
    Batch API until the deadline needs live calls (``auto``; ``note`` hears its switch)."""
    if limiter is None:  # a pool and a router hold each endpoint's (provider's) own limits
        pooled = isinstance(model, EndpointPool | ProviderRouter)
        limiter = model if pooled else build_limiter(config)  # type: ignore[assignment]
    engine = Engine(
        model,
        concurrency=config.concurrency,
        timeout=config.timeout,
        retry=RetryPolicy(retries=config.retries, max_wait=config.max_wait),
        retry_budget=RetryBudget(config.retry_budget),
        limiter=limiter,
        observer=observer,
        seed=config.seed,
        repair=config.repair,
        store=store,
        admit=admit,
    )
    if config.engine == "batch":
        engine.dispatch = _batch_dispatch(config, engine, ledger())
    elif config.engine == "auto":
        engine.dispatch = _auto_dispatch(config, engine, ledger(), note)
    elif config.engine == "ray":
        from fanwise.cluster import RayDispatch
        from fanwise.cluster.setup import RAY_ACTOR, shared_limits, start_ray, worker_plan

        start_ray(config)
        engine.dispatch = RayDispatch(
            plan=worker_plan(config),
            limits=shared_limits(config),
            workers=config.workers,
            actor_options=RAY_ACTOR,
        )
    return engine


def check_batch_key(config: RunConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Anthropic's and Gemini's batch APIs need a key even when a keyless server answers the
    live calls: said before the run starts, not as a traceback once it has."""
    if config.engine not in ("batch", "auto") or config.provider not in ("anthropic", "gemini"):
        return
    if not key_for(config.provider, environ):
        names = " or ".join(KEYS[config.provider])
        raise ConfigError(
            "provider", f"the {config.provider} batch API needs an API key: set {names}"
        )


def batch_client(config: RunConfig, model: Model) -> tuple[Any, Any]:
    """The Batch API of the run's provider, and its file limits (None: OpenAI's)."""
    # Imported here: batchapi loads the openai SDK, 0.5 s and 23 MB that every other run
    # would pay at startup (docs/benchmarks.md).
    from fanwise.batchapi import BatchClient
    from fanwise.models.openai import OpenAIModel

    if model.name == "anthropic":  # Message Batches (batchapi/anthropic.py)
        from fanwise.batchapi.anthropic import LIMITS, AnthropicBatchClient

        return AnthropicBatchClient(base_url=config.base_url), LIMITS
    if model.name == "gemini":  # Batch Mode (batchapi/gemini.py): Gemini's own API
        from fanwise.batchapi import gemini as gemini_batch

        return gemini_batch.GeminiBatchClient(base_url=config.base_url), gemini_batch.LIMITS
    if isinstance(model, OpenAIModel):  # build_model sees to it
        return BatchClient(model.client), None
    raise ConfigError("engine", f"{config.engine} needs the OpenAI, Anthropic or Gemini provider")


def _batch_dispatch(config: RunConfig, engine: Engine, ledger: JournalLedger | None) -> Any:
    """OpenAI's Batch API, or Anthropic's Message Batches, behind one ``BatchAPI``."""
    from fanwise.batchapi import BatchAPI, Polling

    batches, limits = batch_client(config, engine.model)
    return BatchAPI(
        batches,
        engine.live,
        api="chat" if config.api == "chat" else "responses",
        limits=limits,
        polling=Polling(first=min(1.0, config.batch_poll), most=config.batch_poll),
        ledger=ledger,
        retry_with=config.retry_with,  # type: ignore[arg-type]  # checked by RunConfig
    )


def _auto_dispatch(
    config: RunConfig, engine: Engine, ledger: JournalLedger | None, note: Notify | None
) -> Any:
    """``auto``: the Batch API until the deadline needs live calls (dispatch/auto.py)."""
    from fanwise.dispatch.auto import Auto

    assert config.deadline_at is not None, "open_run fixes it (RunConfig.started)"
    batches, limits = batch_client(config, engine.model)
    return Auto(
        batches,
        engine.live,
        deadline=config.deadline_at,
        api="chat" if config.api == "chat" else "responses",
        ledger=ledger,
        most_poll=config.batch_poll,
        latency=config.live_latency,
        note=note,
        **({} if limits is None else {"limits": limits}),
    )


def _open_journal(config: RunConfig, environ: Mapping[str, str], notify: Notify | None) -> Journal:
    """The config's journal file (the fanwise home, made private, by default)."""
    path = journal_path(config.journal_path, environ)
    secrets = [environ.get(name) for names in KEYS.values() for name in names]
    extra: dict[str, Any] = {} if notify is None else {"notify": notify}
    try:
        if not config.journal_path:
            private_dir(path.parent, *(() if notify is None else (notify,)))
        return Journal.open(path, secrets=secrets, content=Content(config.journal_content), **extra)
    except JournalError as exc:
        raise ConfigError("journal_path", str(exc)) from None
    except OSError as exc:
        raise ConfigError(
            "journal_path", f"cannot open the journal {path}: {exc.strerror}"
        ) from None


__all__ = [
    "OpenRun",
    "batch_client",
    "build_engine",
    "build_model",
    "open_run",
    "run_budget",
    "run_prices",
    "run_settings",
]
