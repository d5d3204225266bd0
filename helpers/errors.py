"""The one exception type the helpers raise for problems a learner can fix (introduced in 02)."""

from __future__ import annotations


class LearnerError(Exception):
    """A problem the learner can fix: the message says what happened and what to do next.

    In Jupyter only the message is shown, not a traceback through the helpers' internals.
    """

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom error display
        return [f"{type(self).__name__}: {self}"]
