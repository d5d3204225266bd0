"""The thin helper package behind the notebook series on transfer learning with Keras.

Import what a notebook needs explicitly, e.g. ``from helpers import config, data, viz``.
"""

import logging
import sys
import warnings

from helpers import quiet

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
