# `jupyter nbconvert --execute` in this project's .venv: the kernel talks over Unix sockets in a
# private temporary folder, not TCP, so ipykernel does not print "Kernel is running over TCP
# without encryption" once per notebook (make run does the same in course_tools/run.py).
#
# `make setup` copies this file into .venv/etc/jupyter/, a folder every Jupyter program started
# from the .venv reads its configuration from (sys.prefix/etc/jupyter): `make ...`, CI, and a
# `.venv/bin/jupyter nbconvert ...` typed by hand alike. A JUPYTER_CONFIG_PATH exported by the
# Makefile would reach only what make starts. Only `jupyter nbconvert` reads this file (by its
# name): JupyterLab and its kernels keep their own settings. An option on the command line wins
# over it (e.g. --KernelManager.transport=tcp).
#
# nbconvert's ExecutePreprocessor (an nbclient NotebookClient) creates its kernel manager with
# the application's configuration, which this file is part of. The socket folder must be an
# absolute path: with the default ("kernel-ipc", relative) the kernel, which runs in the
# notebook's folder, and nbconvert, in yours, would look for the sockets in different places.
import atexit
import os
import shutil
import tempfile

c = get_config()  # noqa: F821 (defined by Jupyter when it reads this file)

if os.name != "nt":  # ZeroMQ has no Unix sockets on Windows: TCP stays
    _sockets = tempfile.mkdtemp(prefix="jupyter-nbconvert-")  # mode 0700: yours alone
    atexit.register(shutil.rmtree, _sockets, ignore_errors=True)
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = os.path.join(_sockets, "kernel")
