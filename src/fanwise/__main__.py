"""``python -m fanwise`` and the ``fanwise`` command.

Loading the CLI takes a moment (more on a busy machine); a Ctrl-C in that moment used to print
a ``KeyboardInterrupt`` traceback from deep in an import. It exits 130 instead, as during a run.
"""

import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    try:
        from fanwise.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\nfanwise: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    cli_main()


if __name__ == "__main__":
    main()
