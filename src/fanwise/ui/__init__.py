"""What a person sees: the live view and plain lines, the timeline, Markdown, JSON and HTML.

Nothing here decides anything about a run; the engine and the runners never import it.
Each module is imported on its own, when a command needs it, so ``import fanwise`` stays light.
"""
