"""``RunConfig``: how a run runs, decided once, for every front door.

The CLI turns its flags into one, the Python API its keyword arguments, a resume reads one back
from the journal. The provider is resolved here, once, from the model's name, the keys set and
the base URL: everything downstream (the model, the limiter, the settings, the journal's
endpoint, the Ray workers) reads ``config.provider`` and never guesses again. A config holds no
API key (keys stay in the environment), so it can be journaled and pickled to Ray workers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fanwise.factory import ConfigError, check_base_url, resolve_provider
from fanwise.models.offline import OfflineSettings
from fanwise.retry import MAX_WAIT

CONFIG_VERSION = 1
"""The version ``to_dict`` writes; ``from_dict`` reads this one and converts older forms."""
ENGINES = ("live", "batch", "ray", "auto")
APIS = ("responses", "chat")
TRANSPORTS = ("aiohttp", "sdk")
RETRY_WITH = ("batch", "live")
CONTENTS = ("full", "meta")
ON_JOURNAL_ERROR = ("stop", "continue")
JOURNAL_OFF = ("off", "0", "false", "no")
"""Values of ``FANWISE_JOURNAL`` that turn the journal off (as ``--no-journal`` does)."""


def journal_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """``FANWISE_JOURNAL=off``: nothing of any run is written to disk."""
    return environ.get("FANWISE_JOURNAL", "").strip().lower() in JOURNAL_OFF


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Every setting of a run, checked when made (``ConfigError(setting, message)``).

    ``provider`` is a resolved one (``openai``, ``anthropic``, ``gemini``, ``offline``); given
    ``auto``, the constructor resolves it from ``model``, the keys in ``os.environ`` and the
    base URL (``from_values`` takes another environment). ``journal`` records the run;
    ``journal_path`` is the file (None: ``$FANWISE_HOME/journal.db``).
    """

    VERSION: ClassVar[int] = CONFIG_VERSION

    provider: str = "auto"
    model: str | None = None
    reasoning_effort: str | None = None
    base_url: str | None = None
    api: str = "responses"
    transport: str = "aiohttp"
    endpoints: tuple[str, ...] = ()
    engine: str = "live"
    concurrency: int = 8
    timeout: float | None = None
    deadline: float | None = None
    retries: int = 3
    retry_budget: int | None = None
    max_wait: float = MAX_WAIT
    rpm: int | None = None
    tpm: int | None = None
    adapt: bool = True
    repair: bool = True
    max_output_tokens: int | None = None
    max_cost: float | None = None
    prices: str | None = None
    price: tuple[str, ...] = ()
    """Prices given one by one, ``MODEL=input=N,output=N`` (US dollars per 1M tokens)."""
    journal: bool = False
    journal_path: str | None = None
    journal_content: str = "full"
    on_journal_error: str = "stop"
    cache: bool = False
    offline: OfflineSettings = field(default_factory=OfflineSettings)
    batch_poll: float = 60.0
    retry_with: str = "batch"
    workers: int = 2
    ray_address: str | None = None
    live_latency: float = 10.0
    deadline_at: float | None = None
    """The auto engine's deadline on the wall clock (Unix seconds), fixed when the run first
    starts (``started``), so that a resume keeps to the same one."""

    def __post_init__(self) -> None:
        if self.provider in (None, "", "auto"):
            resolved = resolve_provider("auto", os.environ, self.model, base_url=self.server)
            object.__setattr__(self, "provider", resolved)
        else:
            resolve_provider(self.provider)  # an unknown one: ConfigError("provider")
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        object.__setattr__(self, "price", tuple(self.price))
        self._check()

    @property
    def server(self) -> str | None:
        """The OpenAI-compatible server named, if any: the base URL, or the first endpoint."""
        return self.base_url or next(iter(self.endpoints), None)

    @property
    def prompt_api(self) -> str:
        """Where prompt-style requests go: ``api``, except Gemini's Batch Mode, which is its own
        API (``generateContent`` bodies)."""
        native = self.provider == "gemini" and self.engine in ("batch", "auto")
        return "generateContent" if native else self.api

    @property
    def seed(self) -> int:
        """The offline model's seed, which seeds the retries' jitter too."""
        return self.offline.seed

    @classmethod
    def from_values(
        cls,
        *,
        provider: str = "auto",
        environ: Mapping[str, str] = os.environ,
        seed: int | None = None,
        offline_latency: tuple[float, float] | None = None,
        offline_fail_rate: float | None = None,
        **values: Any,
    ) -> RunConfig:
        """A config from plain values (the CLI's flags, the API's keyword arguments): the
        provider resolved against ``environ``, ``FANWISE_JOURNAL=off`` applied, the prices
        file made absolute (a resume reads it from any directory)."""
        unknown = set(values) - set(_names())
        if unknown:
            raise ConfigError(sorted(unknown)[0], f"unknown setting {sorted(unknown)[0]!r}")
        model = values.get("model")
        server = values.get("base_url") or next(iter(values.get("endpoints") or ()), None)
        check_base_url(values.get("base_url"))
        values["provider"] = resolve_provider(provider, environ, model, base_url=server)
        if seed is not None or offline_latency is not None or offline_fail_rate is not None:
            base = values.get("offline") or OfflineSettings()
            try:
                values["offline"] = OfflineSettings(
                    base.seed if seed is None else seed,
                    tuple(base.latency if offline_latency is None else offline_latency),
                    base.fail_rate if offline_fail_rate is None else offline_fail_rate,
                )
            except ValueError as exc:
                raise ConfigError("offline", str(exc)) from None
        if journal_disabled(environ):
            for name, given in (
                ("cache", values.get("cache")),
                ("journal_path", values.get("journal_path")),
                ("journal_content", values.get("journal_content", "full") != "full"),
            ):
                if given:
                    raise ConfigError(
                        name, "needs the journal, and FANWISE_JOURNAL=off turns it off"
                    )
            values["journal"] = False
        if values.get("prices"):
            values["prices"] = str(Path(values["prices"]).resolve())
        return cls(**values)

    def started(self, now: float | None = None) -> RunConfig:
        """This config as a run starts: the auto engine's deadline fixed on the wall clock the
        first time, and ``deadline`` the seconds left to it (none, past it: all goes live)."""
        if self.engine != "auto":
            return self
        now = time.time() if now is None else now
        if self.deadline_at is None:
            assert self.deadline is not None  # checked when made
            return self.replace(deadline_at=now + self.deadline)
        left = self.deadline_at - now
        return self.replace(deadline=left if left > 0 else None)

    def seconds_left(self) -> float | None:
        """The run's deadline in seconds from now: an auto run's read off the wall clock just
        before the calls start, so that setting up is not added to it."""
        if self.engine != "auto" or self.deadline_at is None or self.deadline is None:
            return self.deadline
        return max(0.001, self.deadline_at - time.time())

    def replace(self, **changes: Any) -> RunConfig:
        """This config with ``changes`` (a resume's overrides), checked again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, with the format's ``version``: what the journal keeps."""
        data = {name: getattr(self, name) for name in _names()}
        data["endpoints"] = list(self.endpoints)
        data["price"] = list(self.price)
        data["offline"] = {
            "seed": self.offline.seed,
            "latency": list(self.offline.latency),
            "fail_rate": self.offline.fail_rate,
        }
        return {"version": CONFIG_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """A config from ``to_dict``'s form (a setting added since takes its default)."""
        version = data.get("version")
        if version != CONFIG_VERSION:
            raise ConfigError("config", f"unknown run config version {version!r}")
        known = {k: v for k, v in data.items() if k in _names()}
        offline = known.get("offline") or {}
        known["offline"] = OfflineSettings(
            int(offline.get("seed", 0)),
            tuple(offline.get("latency", (0.5, 3.0))),
            float(offline.get("fail_rate", 0.0)),
        )
        known["endpoints"] = tuple(known.get("endpoints") or ())
        known["price"] = tuple(known.get("price") or ())
        return cls(**known)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RunConfig:
        """The config of a run journaled before configs were (its spec's ``options``: the
        CLI's flags, or the Python API's few): the provider in it was already resolved."""
        names = set(_names())
        values = {k: v for k, v in options.items() if k in names and v is not None}
        values.pop("journal", None)  # there: a path, or None
        values["journal"] = not options.get("no_journal", False)
        if options.get("journal"):
            values["journal_path"] = options["journal"]
        values["endpoints"] = tuple(values.get("endpoints") or ())
        values["offline"] = OfflineSettings(
            int(options.get("seed", 0)),
            tuple(options.get("offline_latency") or (0.5, 3.0)),
            float(options.get("offline_fail_rate", 0.0)),
        )
        return cls(**values)

    def _check(self) -> None:
        """Each setting on its own, then the combinations an engine cannot run."""
        for name, allowed in (
            ("engine", ENGINES),
            ("api", APIS),
            ("transport", TRANSPORTS),
            ("retry_with", RETRY_WITH),
            ("journal_content", CONTENTS),
            ("on_journal_error", ON_JOURNAL_ERROR),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(name, f"unknown {name} {value!r}: use {', '.join(allowed)}")
        for name, least in (("concurrency", 1), ("retries", 0), ("workers", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ConfigError(
                    name, f"must be a whole number of at least {least}, got {value!r}"
                )
        for name in ("retry_budget", "rpm", "tpm", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(name, f"must be a whole number of 0 or more, got {value!r}")
        for name in ("timeout", "deadline", "batch_poll", "live_latency"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(name, f"must be a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.max_wait) and self.max_wait >= 0):
            raise ConfigError("max_wait", f"must be 0 or more seconds, got {self.max_wait!r}")
        if self.max_cost is not None and not (math.isfinite(self.max_cost) and self.max_cost >= 0):
            raise ConfigError("max_cost", f"must be 0 or more dollars, got {self.max_cost!r}")
        check_base_url(self.base_url)
        for url in self.endpoints:
            check_base_url(url)
        self._check_engine()

    def _check_engine(self) -> None:
        if self.engine == "auto" and self.deadline is None and self.deadline_at is None:
            raise ConfigError("deadline", "the auto engine needs a deadline (e.g. 2h or 07:00)")
        if self.engine not in ("batch", "auto"):
            return
        if self.provider == "offline":
            raise ConfigError(
                "engine",
                f"{self.engine} needs the OpenAI Batch API: set OPENAI_API_KEY (or a base URL of "
                "an OpenAI-compatible server with /v1/batches, such as fanwise simulate)",
            )
        if self.endpoints:
            raise ConfigError(
                "endpoints", "several endpoints spread live calls: use the live or ray engine"
            )


def _names() -> tuple[str, ...]:
    """The config's settings in order (its fields; ``VERSION`` is the class's)."""
    return tuple(f.name for f in dataclasses.fields(RunConfig))


__all__ = ["CONFIG_VERSION", "ENGINES", "JOURNAL_OFF", "RunConfig", "journal_disabled"]
