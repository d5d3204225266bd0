"""Commands for teachers and maintainers of the series; no notebook imports this package.

The notebooks import ``helpers`` only (``helpers/`` is what a learner reads); these commands
import ``helpers``, never the other way round (tests/test_layout.py checks both). Each runs as
``python -m course_tools.<module>`` behind a ``make`` target:

- ``run``: ``make run`` executes the series headless with the current ``TL_*`` settings and
  prints the results table; ``make strip`` removes notebook outputs (``--strip``).
- ``classroom``: ``make student`` (copies without solution cells), ``make html`` (a static site
  of the last run) and ``make grade SUBMISSIONS=folder`` (grades.csv of submitted notebooks).
- ``fetch``: ``make fetch`` downloads the data set and weights a profile needs (an offline room).
- ``compat``: ``make compat`` runs 01, 04, 05 and 07 under other TensorFlow/Keras versions.
"""
