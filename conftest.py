"""How ``make test`` shares two processes (pytest-xdist, ``JOBS=2``): group by group.

The notebooks (nbval) form one group, so they run in order in one process and 05 finds what 04
saved; each test file is a group of its own, so a module's fixtures are built once, unless a
test's id ends in ``@name``, which names its group (tests/test_three_classes.py). The longest
groups start first.

Each notebook runs once per class count: where the browser tests run (a chromium, playwright, the
ci profile), their Run All of 01, 03, 06 and 07 replaces nbval's run of those four.
"""

from __future__ import annotations

import os

# The groups that take longest start first, so neither process waits for the other at the end.
FIRST = ("three-classes-a", "tests/test_browser.py", "notebooks", "three-classes-b")


def _group(nodeid: str) -> str:
    """Returns the group of a test: "notebooks" for every notebook cell, the name after an ``@``
    at the end of its id, else its file."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return "notebooks"
    if nodeid.endswith("]") and "@" in nodeid.rsplit("[", 1)[-1]:
        return nodeid[:-1].rsplit("@", 1)[1]
    return path


def pytest_xdist_make_scheduler(config, log):
    """xdist's scheduling by scope, with the scopes of ``_group`` (xdist's own "loadgroup" marks
    do not reach its scheduler under pytest 9.2: the node ids it renames are no longer read), in
    the order of the collection, which ``FIRST`` sorts. xdist would sort the groups by their
    number of tests (its --loadscope-reorder): the three-class chain, 5 long tests, then started
    last, and one process ended 54 s after the other."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    config.option.loadscopereorder = False  # --no-loadscope-reorder (pytest-xdist 3.8)
    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    run_all = [
        item
        for item in items
        if item.path.name == "test_browser.py" and item.name.startswith("test_run_all")
    ]
    if run_all and os.environ.get("TL_PROFILE", "ci") == "ci" and run_all[0].module.can_run():
        in_browser = {item.callspec.params["name"] for item in run_all}
        twice = [item for item in items if item.path.name in in_browser]  # their nbval cells
        if twice:
            config.hook.pytest_deselected(items=twice)
            items[:] = [item for item in items if item.path.name not in in_browser]
    rank = {group: index for index, group in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(_group(item.nodeid), len(FIRST)))  # stable
