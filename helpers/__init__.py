"""The thin helper package behind the notebook series on transfer learning with Keras.

Import what a notebook needs explicitly, e.g. ``from helpers import config, data, viz``.
"""

import os
import warnings

# Keep TensorFlow's C++ start-up chatter out of the notebooks (warnings and errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# fit() says it ignores shuffle=True for a tf.data.Dataset: true, and our datasets shuffle
# themselves (train only). The message would only distract from the lesson.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)

REPOSITORY_URL = "https://github.com/keras-tl-course/keras-transfer-learning"  # the one place
