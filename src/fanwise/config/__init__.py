"""How a run runs: ``RunConfig`` (every setting, decided once, journaled for a resume) and
``open_run`` (the config made into a model, an engine, a budget and a run in the journal), the
same for the CLI, the Python API and a resume."""

from fanwise.config.open import OpenRun, build_engine, open_run
from fanwise.config.run_config import CONFIG_VERSION, RunConfig, journal_disabled

__all__ = ["CONFIG_VERSION", "OpenRun", "RunConfig", "build_engine", "journal_disabled", "open_run"]
