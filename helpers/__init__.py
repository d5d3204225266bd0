"""The thin helper package behind the notebook series on transfer learning with Keras.

Import what a notebook needs explicitly, e.g. ``from helpers import config, data, viz``.
"""

import json
import logging
import os
import sys
import warnings


def keras_backend() -> str:
    """Returns the backend Keras loads: ``KERAS_BACKEND``, else ``keras.json``'s, else tensorflow.

    Read before Keras is imported, as Keras reads it (``$KERAS_HOME`` or ``~/.keras``).
    """
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
                name = json.load(file).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return name or "tensorflow"


# The series runs on Keras's TensorFlow backend (tf.data, GradientTape, LiteRT, tf.distribute).
# Another backend would fail later, deep in tf.data: stop here, in Setup, with what to set.
if keras_backend() != "tensorflow":
    from helpers.errors import LearnerError

    raise LearnerError(
        f"Keras is set to the {keras_backend()!r} backend; this series needs 'tensorflow' (its "
        "data pipelines, Grad-CAM, export and tf.distribute are TensorFlow's). Set "
        "KERAS_BACKEND=tensorflow before starting Jupyter, or run `%env KERAS_BACKEND=tensorflow` "
        "and then this cell again (if this kernel imported keras already: Kernel > Restart "
        "first)."
    )

from helpers import quiet  # noqa: E402  (after the backend check: it loads TensorFlow)

# Keep TensorFlow's C++ start-up lines out of the notebooks (Python warnings and errors still
# show): in a Jupyter kernel, importing helpers before keras loads TensorFlow quietly.
if "ipykernel" in sys.modules:
    quiet.import_tensorflow()

# Colab draws ipywidgets 8 only through its custom widget manager: turn it on in the Setup cell
# (helpers/colab.py); the explorers show a static view where widgets cannot be drawn.
if "google.colab" in sys.modules:
    from helpers import colab

    colab.widgets_render()

# fit() says it ignores shuffle=True for a tf.data.Dataset: true, and our datasets shuffle
# themselves (train only). The message would only distract from the lesson.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)

# TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning: the
# solutions build and call small models on purpose, and the advice it gives (about a learner's
# own tf.function) has nothing to act on here. Its other warnings stay visible.
logging.getLogger("tensorflow").addFilter(
    lambda record: "triggered tf.function retracing" not in record.getMessage()
)

REPOSITORY_URL = "https://github.com/keras-tl-course/keras-transfer-learning"  # the one place
