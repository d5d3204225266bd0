"""Colab only: whether its frontend can draw the explorers' ipywidgets, set up once at import.

Colab draws ipywidgets 7 (it ships 7.7.1) as they are, ipywidgets 8 only through its custom
widget manager (googlecolab/colabtools#498, #3020).
"""

from __future__ import annotations

import sys

_render: bool | None = None  # decided once per kernel
STATIC_NOTE = (
    "Interactive widgets cannot be drawn here (Colab with ipywidgets {version} and no custom "
    "widget manager), so this is a static view; change the values in code to explore."
)


def widgets_render() -> bool:
    """Returns True when ipywidgets can be drawn in this frontend; in Colab with ipywidgets 8,
    after enabling its custom widget manager (once), False when that fails."""
    global _render
    if _render is None:
        _render = _decide()
    return _render


def _decide() -> bool:
    if "google.colab" not in sys.modules:
        return True
    import ipywidgets

    if int(ipywidgets.__version__.split(".")[0]) < 8:
        return True
    try:
        from google.colab import output

        output.enable_custom_widget_manager()
    except Exception:  # an old or new google.colab without it: fall back to static views
        return False
    return True


def static_note() -> str:
    """Returns the one-line note shown above an explorer's static view (01, 03, 06, 07)."""
    import ipywidgets

    return STATIC_NOTE.format(version=ipywidgets.__version__)
