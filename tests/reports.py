"""Workflow results for report tests, whose model text tries to inject markup everywhere."""

from __future__ import annotations

from fanwise import Engine, Plan, RetryPolicy, WorkflowResult, run_workflow
from fanwise.outcome import RateLimited, ServerError
from tests.scripted import Reply, ScriptedModel

SCRIPT = "<script>document.title='pwned';document.body.dataset.pwned='yes'</script>"
IMG = '<img id="injected-img" src="x" onerror="document.body.dataset.pwned=\'img\'">'
BOLD = '<b id="injected-b">bold?</b>'
QUESTION = 'Which <i id="injected-q">sights</i> first?'

HOSTILE = Plan(
    'Kyoto <b id="injected-topic">',
    (QUESTION, "transport?", "culture?"),
    title="travel guide",
)


async def hostile_result() -> WorkflowResult:
    """Three calls (one retried, one failed with markup in its error) and a synthesis, all of
    whose text carries ``<script>``, an ``<img onerror>`` and an element with an id."""
    model = ScriptedModel()
    model.enqueue(
        QUESTION,
        Reply(error=RateLimited("slow down", status_code=429), delay=0.01),
        Reply(
            text=f"Go early.\n\n{SCRIPT}\n\n{IMG} and {BOLD} [x](javascript:alert(1))", delay=0.02
        ),
    )
    model.enqueue("transport?", Reply(text="Trains.", delay=0.03))
    model.enqueue(
        "culture?",
        Reply(error=ServerError(f"upstream said {SCRIPT}", status_code=500), delay=0.01),
        Reply(error=ServerError(f"again {BOLD}", status_code=500), delay=0.01),
    )
    engine = Engine(model, retry=RetryPolicy(retries=1, base_delay=0.04), seed=1)
    return await run_workflow(HOSTILE, engine)


INJECTED_IDS = ("injected-img", "injected-b", "injected-q", "injected-topic")
