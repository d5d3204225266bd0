"""make test's two processes take the longest groups first (conftest.py), whatever xdist does."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Config:
    """What xdist's scheduler reads of pytest's config: -n 2, --loadscope-reorder (its default)."""

    def __init__(self):
        self.option = types.SimpleNamespace(loadscopereorder=True, numprocesses=2, tx=["2*popen"])

    def getoption(self, name, default=None):
        return getattr(self.option, name, default)

    getvalue = getoption


class _Node:
    """A worker process: records the tests it is sent, in order."""

    shutting_down = False

    def __init__(self, name: str, collection: list[str]):
        self.gateway = types.SimpleNamespace(id=name)
        self.collection, self.sent = collection, []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(self.collection[i] for i in indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_the_groups_start_in_the_order_of_first_not_by_their_number_of_tests():
    conftest = _root_conftest()
    long_chain = [f"tests/test_three_classes.py::test_runs[0{n}@{conftest.FIRST[0]}]" for n in "45"]
    many_short = [f"tests/test_data.py::test_{n}" for n in range(40)]
    collection = many_short + long_chain  # as collected; conftest then sorts FIRST's groups first
    items = [types.SimpleNamespace(nodeid=n, path=Path(n), name="") for n in collection]
    conftest.pytest_collection_modifyitems(_Config(), items)
    collection = [item.nodeid for item in items]
    assert collection[:2] == long_chain

    scheduler = conftest.pytest_xdist_make_scheduler(_Config(), None)
    nodes = [_Node("gw0", collection), _Node("gw1", collection)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    # xdist's own order (groups by their number of tests, most first) would start test_data first
    assert nodes[0].sent[:2] == long_chain, nodes[0].sent[:3]
    assert nodes[1].sent[0] == many_short[0]
