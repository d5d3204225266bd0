"""The thin helper package behind the notebook series on transfer learning with Keras.

Import what a notebook needs explicitly, e.g. ``from helpers import config, data, viz``.
"""

import os

# Keep TensorFlow's C++ start-up chatter out of the notebooks (warnings and errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPOSITORY_URL = "https://github.com/keras-tl-course/keras-transfer-learning"  # the one place
