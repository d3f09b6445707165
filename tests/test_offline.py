"""The offline model: deterministic, labelled, parallel-friendly latency, injectable faults."""

from __future__ import annotations

import pytest

from fanwise import CallError, OfflineModel, OfflineSettings, Request
from fanwise.models.offline import LABEL


class Clock:
    """Records the sleeps the model asks for instead of sleeping."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_same_seed_same_answer_other_seed_other_answer() -> None:
    """Answers depend only on the seed and the prompt."""
    request = Request.text("What are the top attractions to visit in Kyoto?")
    a = await OfflineModel(OfflineSettings(seed=7), sleep=Clock()).complete(request)
    b = await OfflineModel(OfflineSettings(seed=7), sleep=Clock()).complete(request)
    c = await OfflineModel(OfflineSettings(seed=8), sleep=Clock()).complete(request)
    assert a.text == b.text and a.text != c.text


async def test_answers_are_labelled_and_about_the_prompt() -> None:
    """Every answer says it is offline and mentions the question's subject."""
    completion = await OfflineModel(sleep=Clock()).complete(
        Request.text("What cultural customs should a visitor to Marrakesh know?")
    )
    assert LABEL in completion.text and "Marrakesh" in completion.text
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0


async def test_latency_is_drawn_within_the_configured_range() -> None:
    """Each call sleeps a seeded latency between LOW and HIGH, and they differ per prompt."""
    clock = Clock()
    model = OfflineModel(OfflineSettings(latency=(0.5, 3.0)), sleep=clock)
    for i in range(30):
        await model.complete(Request.text(f"question {i}?"))
    assert all(0.5 <= s <= 3.0 for s in clock.slept)
    assert len(set(clock.slept)) == 30


async def test_fail_rate_injects_classified_faults_and_retries_can_succeed() -> None:
    """With fail_rate 0.5 some attempts raise classified errors; another attempt draws anew."""
    model = OfflineModel(OfflineSettings(fail_rate=0.5, latency=(0, 0)), sleep=Clock())
    kinds = set()
    for i in range(40):
        try:
            await model.complete(Request.text(f"q{i}"))
        except CallError as error:
            kinds.add(error.kind.value)
    assert kinds == {"rate_limited", "server", "bad_request"}


async def test_synthesis_prompts_are_really_synthesised() -> None:
    """A prompt carrying research gets a guide with one section per answer and the gaps named."""
    prompt = (
        "Write a guide.\n\nTopic: Kyoto\n\n## Research (1 of 2 questions answered)\n\n"
        "### Q1: Where to eat?\nNishiki market.\n\n## Missing\nThese questions could not be "
        "answered; say what is missing:\n- How to get around?\n"
    )
    text = (await OfflineModel(sleep=Clock()).complete(Request.text(prompt))).text
    assert text.startswith("# Kyoto: a guide")
    assert "## Where to eat?\n\nNishiki market." in text
    assert "## What this guide is missing" in text and "- How to get around?" in text
    assert "say what is missing" not in text, "the prompt's instruction is not the guide's text"


async def test_streaming_delivers_the_whole_text_in_pieces() -> None:
    """With on_delta, the pieces join up to exactly the returned text."""
    pieces: list[str] = []
    completion = await OfflineModel(sleep=Clock()).complete(
        Request.text("Why tea?"), on_delta=pieces.append
    )
    assert len(pieces) > 3 and "".join(pieces) == completion.text


def test_bad_settings_are_refused() -> None:
    """A latency range upside down or a rate above 1 is refused when the model is built."""
    with pytest.raises(ValueError, match="latency"):
        OfflineSettings(latency=(3, 1))
    with pytest.raises(ValueError, match="fail rate"):
        OfflineSettings(fail_rate=1.5)


async def test_memory_does_not_grow_with_the_number_of_prompts_answered() -> None:
    """Only prompts whose last attempt failed are remembered, so a long batch stays flat."""
    model = OfflineModel(OfflineSettings(fail_rate=0.3, latency=(0, 0)), sleep=Clock())
    for i in range(500):
        for _ in range(10):
            try:
                await model.complete(Request.text(f"q{i}"))
                break
            except CallError:
                continue
    assert len(model._tries) <= 5


async def test_a_question_without_a_name_gets_advice_that_reads_right() -> None:
    """With no capitalised subject, the answer does not invent one ('the topic')."""
    text = (
        await OfflineModel(sleep=Clock()).complete(Request.text("which grinder should i buy?"))
    ).text
    assert "On this question:" in text and "the topic" not in text and "None" not in text
