"""The public surface: one sorted, complete ``__all__``."""

from __future__ import annotations

import fanwise


def test_all_is_sorted_and_every_name_exists() -> None:
    """`fanwise.__all__` is sorted, has no duplicates, and every name in it is importable."""
    names = list(fanwise.__all__)
    assert names == sorted(names) and len(set(names)) == len(names)
    missing = [n for n in names if not hasattr(fanwise, n)]
    assert missing == []


def test_every_public_name_of_the_package_is_exported() -> None:
    """Nothing public is imported into `fanwise` without being listed in `__all__`."""
    public = {n for n in vars(fanwise) if not n.startswith("_")}
    modules = {n for n, v in vars(fanwise).items() if type(v).__name__ == "module"}
    assert public - modules - set(fanwise.__all__) == set()
