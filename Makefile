# The series' commands. Each target creates (or reuses) the .venv on first use.
#   make lab    set up, then open the notebooks in JupyterLab
#   make test   set up, then run the unit tests and execute every notebook (ci profile), and
#               02 and 04-09 once more with three classes and MobileNetV2, in two processes
#   make run    execute the whole series headless with the current TL_* settings
#   make lint   ruff on the helpers, course_tools, tests, benchmarks, notebooks and jupyter-config
#   make strip  remove notebook outputs before committing
#   make fetch  download the data set and weights the active profile needs (for an offline room)
#   make student  copies of the notebooks without solution cells, in student/
#   make html   the executed notebooks of the last make run as a static site, <output_dir>/html/
#   make grade SUBMISSIONS=folder  run each submitted notebook's checks: grades.csv and a summary
#   make compat  01, 04, 05, 07 under the oldest, newest and Colab's TensorFlow/Keras (throwaway venvs)
PYTHON ?= python3
export TF_CPP_MIN_LOG_LEVEL ?= 2
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready

.PHONY: setup lab test run lint format strip clean fetch student html grade compat

# `jupyter nbconvert --execute` in the .venv starts kernels on Unix sockets, without ipykernel's
# "Kernel is running over TCP without encryption": a config file in the .venv's own config
# folder, read by any Jupyter run from the .venv (why there: the file's comment).
NBCONVERT_CONFIG := $(VENV)/etc/jupyter/jupyter_nbconvert_config.py

setup: $(READY) $(NBCONVERT_CONFIG)

# uv (from PyPI) installs what pip would, in parallel: 32 s against 71 s for a fresh .venv here.
# --compile-bytecode, as pip does: without it every new process of the first test run compiled
# TensorFlow's modules again (the suite took 22 min of CPU against 16). It does not read pip's
# configuration files, so where it fails (say, a package index that only pip.conf names) pip
# installs the same.
$(READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]' \
		|| $(PY) -m pip install --quiet -e '.[dev]'
	touch $(READY)

$(NBCONVERT_CONFIG): jupyter-config/jupyter_nbconvert_config.py | $(READY)
	mkdir -p $(@D)
	cp $< $@

# The announcements plugin asks "Would you like to get notified about official Jupyter news?" on
# first start and fetches news and updates from the internet: off for this .venv (sys-prefix).
NEWS_PLUGIN := @jupyterlab/apputils-extension:announcements

lab: setup
	$(VENV)/bin/jupyter labextension disable --level=sys_prefix $(NEWS_PLUGIN) >/dev/null 2>&1 || true
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

# Unit tests, every notebook (nbval; the browser's Run All for 01, 03, 06, 07 where chromium is
# there), and 02 and 04-09 again with three classes and the quick profile's MobileNetV2
# (tests/test_three_classes.py, when TL_DATA and TL_PROFILE are left alone). TL_PROFILE defaults
# to ci here (offline, seconds). TL_STRICT_CHECKS=1: an exercise check that does not pass on the
# solutions fails its notebook. JOBS processes share the tests (pytest-xdist; conftest.py says
# how): 2 on the 2-core machines the series is tested on; JOBS=0 runs them in this process.
JOBS ?= 2
test: setup
	TL_PROFILE=$${TL_PROFILE:-ci} TL_STRICT_CHECKS=1 $(PY) -m pytest --nbval-lax \
		-n $(JOBS) --durations=15 $(PYTEST_ARGS)

run: setup
	$(PY) -m course_tools.run

lint: setup
	$(VENV)/bin/ruff check conftest.py helpers course_tools tests benchmarks notebooks jupyter-config
	$(VENV)/bin/ruff format --check conftest.py helpers course_tools tests benchmarks notebooks jupyter-config

format: setup
	$(VENV)/bin/ruff check --fix conftest.py helpers course_tools tests benchmarks notebooks jupyter-config
	$(VENV)/bin/ruff format conftest.py helpers course_tools tests benchmarks notebooks jupyter-config

strip: setup
	$(PY) -m course_tools.run --strip

fetch: setup
	$(PY) -m course_tools.fetch

student: setup
	$(PY) -m course_tools.classroom student

html: setup
	$(PY) -m course_tools.classroom html

# TIME_LIMIT: seconds per notebook (default 600); GRADES: where grades.csv goes
grade: setup
	$(PY) -m course_tools.classroom grade "$(SUBMISSIONS)" $(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT)) $(if $(GRADES),--to "$(GRADES)")

# Not part of make test: it builds one venv per version set (about 2 GB each) and takes a while.
compat: setup
	$(PY) -m course_tools.compat $(COMPAT_ARGS)

clean:
	rm -rf runs
