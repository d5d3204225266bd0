"""The one exception type the helpers raise for problems a learner can fix (introduced in 02)."""

from __future__ import annotations


class LearnerError(Exception):
    """A problem the learner can fix: the message says what happened and what to do next.

    In Jupyter only the message is shown, not a traceback through the helpers' internals.
    """

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom error display
        return [f"{type(self).__name__}: {self}"]


def setting_hint(variable: str, example: str) -> str:
    """Returns one sentence on the two ways to change a ``TL_*`` setting (introduced in 02).

    Before starting: in the environment of ``make lab`` / ``make run``; in a running notebook:
    ``%env`` followed by the Setup cell again (the settings are read there, once).
    """
    return (
        f"To change it, set it before starting ({variable}={example} make lab, or make run), "
        f"or in the running notebook with `%env {variable}={example}` and then run the Setup "
        "cell again."
    )
