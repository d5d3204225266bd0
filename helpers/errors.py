"""The one exception type the helpers raise for problems a learner can fix (introduced in 02)."""

from __future__ import annotations


class LearnerError(Exception):
    """A problem the learner can fix: Jupyter shows only the message (what happened and what to
    do next), not a traceback through the helpers."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom error display
        return [f"{type(self).__name__}: {self}"]


def setting_hint(variable: str, example: str) -> str:
    """Returns one sentence on the two ways to change a ``TL_*`` setting (introduced in 02)."""
    return (
        f"To change it, set it before starting ({variable}={example} make lab, or make run), "
        f"or in the running notebook with `%env {variable}={example}` and then run the Setup "
        "cell again."
    )
