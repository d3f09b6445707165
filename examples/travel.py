"""The seed lesson's travel planner, written with fanwise's Python API, step by step.

    python examples/travel.py Kyoto

With OPENAI_API_KEY set it asks GPT-5; without it, the built-in offline model answers. The
lesson's TypeScript used ``Promise.allSettled``; here that is ``fanwise.settle``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from fanwise import Fulfilled, Model, OfflineModel, OfflineSettings, Rejected, Request, settle


def make_model() -> Model:
    """GPT-5 through the official SDK when a key is set, the offline model otherwise."""
    if os.environ.get("OPENAI_API_KEY"):
        from fanwise.models.openai import OpenAIModel

        return OpenAIModel()
    print("(no OPENAI_API_KEY: using the built-in offline model)", file=sys.stderr)
    return OfflineModel(OfflineSettings(seed=0))


# Step 1: one research question -> one (question, answer) pair, logging as it goes.
async def ask(model: Model, question: str) -> tuple[str, str]:
    print(f"🔄 Asking: {question}")
    request = Request.text(question, model="gpt-5", reasoning_effort="minimal")
    completion = await model.complete(request)
    print(f"✅ Answered: {question}")
    return question, completion.text


async def main(destination: str, model: Model | None = None) -> str | None:
    """Research ``destination`` in parallel, then synthesize; returns the guide, if any."""
    model = model or make_model()

    # Step 2: independent questions; none depends on another's answer.
    questions = [
        f"What are the top attractions to visit in {destination}?",
        f"What is the best way to get around {destination} (transportation)?",
        f"What cultural customs and etiquette should a visitor to {destination} know?",
    ]

    # Step 3: launch them all at once and keep every outcome (Promise.allSettled).
    started = time.monotonic()
    outcomes = await settle(ask(model, q) for q in questions)
    print(f"⏱  research took {time.monotonic() - started:.1f} s for {len(questions)} questions")

    answered = [o.value for o in outcomes if isinstance(o, Fulfilled)]
    for question, outcome in zip(questions, outcomes, strict=True):
        if isinstance(outcome, Rejected):
            print(f"❌ Failed: {question}: {outcome.kind}: {outcome.message}")
    print(f"{len(answered)} answered, {len(questions) - len(answered)} failed")

    # Step 4: the edge case: nothing to synthesize from.
    if not answered:
        print("All research failed; no travel guide can be written.")
        return None

    # Step 5: one sequential synthesis call over the answers that arrived.
    research = "\n\n".join(f"### Q{n}: {q}\n{a}" for n, (q, a) in enumerate(answered, 1))
    missing = [q for q, o in zip(questions, outcomes, strict=True) if isinstance(o, Rejected)]
    prompt = (
        f"Write a travel guide for {destination} from the research below. Work with what is "
        "available and say briefly what is missing.\n\n"
        f"Topic: {destination}\n\n## Research\n\n{research}\n"
    )
    if missing:
        prompt += "\n## Missing\n" + "\n".join(f"- {q}" for q in missing) + "\n"
    guide = await model.complete(Request.text(prompt, model="gpt-5", reasoning_effort="minimal"))
    print("\n" + guide.text)
    return guide.text


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "Kyoto"))
