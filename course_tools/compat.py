"""``python -m course_tools.compat`` (``make compat``): the notebooks under other TensorFlow/Keras.

For each version set (the oldest supported TensorFlow/Keras pair, the newest, and the versions
Colab's runtime ships), it builds a throwaway virtual environment, preinstalls the set, installs
the helpers package with the notebooks' own Colab install block (Colab simulated: a stand-in
``google.colab`` module, and git told to fetch the repository URL from this checkout's commit),
checks that the preinstalled versions did not change, then executes 01, 04, 05 and 07 in the
``ci`` profile there, one notebook at a time under ``flock /tmp/tf.lock``. It prints one table
row per set (TEACHING.md keeps the last table) and deletes the environments unless ``--keep``.

The ranges that passed are written down once, in ``helpers.config.TESTED_VERSIONS`` (the learner's
Setup cell warns outside them, so they live with the helpers): pyproject.toml's dependencies say
the same (a test checks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers import REPOSITORY_URL

# Colab's runtime as googlecolab/backend-info's pip-freeze.txt lists it (commit a7240792,
# 2026-08-19 "Upgrade to Python 3.13"; read 2026-11-30). Colab runs Python 3.13; here 3.11.
COLAB_PACKAGES = [
    "tensorflow==2.20.0",
    "keras==3.13.2",
    "ipywidgets==7.7.1",
    "widgetsnbextension==3.6.10",
    "jupyterlab_widgets==3.0.16",
    "ipykernel==6.17.1",
    "ipython==7.34.0",
    "jupyter_client==7.4.9",
    "jupyter_server==2.20.0",
    "notebook==6.5.7",
    "nbclient==0.10.4",
    "nbconvert==7.17.1",
    "traitlets==5.7.1",
    "numpy==2.1.3",
    "protobuf==5.29.6",
    "tensorflow-datasets==4.9.10",
    "matplotlib==3.10.0",
    "scikit-learn==1.6.1",
    "pillow==11.3.0",
    "tqdm==4.67.3",
]

# name -> what is preinstalled before the package (a Jupyter kernel in each: any Jupyter has one)
VERSION_SETS = {
    "oldest": ["tensorflow==2.20.0", "keras==3.13.2", "ipykernel"],  # older: TEACHING.md
    "newest": ["tensorflow==2.21.0", "keras==3.15.1", "ipykernel"],
    "colab": COLAB_PACKAGES,
}
NOTEBOOKS = ("01", "04", "05", "07")
WATCHED = ("tensorflow", "keras", "ipywidgets")  # must not change when Colab's are in range
LOCK = "/tmp/tf.lock"


def colab_block(notebook: Path) -> str:
    """Returns the Colab install block: ``notebook``'s first code cell, collapsed in JupyterLab.

    The block runs from the first line to the end of the ``if "google.colab" ...`` statement.
    """
    cells = json.loads(notebook.read_text())["cells"]
    source = "".join(next(cell for cell in cells if cell["cell_type"] == "code")["source"])
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('if "google.colab"'))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    return "\n".join(lines[:end]).rstrip() + "\n"


def simulated_colab_env(checkout: Path) -> dict[str, str]:
    """Returns environment variables under which git fetches ``REPOSITORY_URL`` from ``checkout``.

    pip installs ``git+REPOSITORY_URL`` with ``git clone``; git's ``insteadOf`` rewrites the URL
    to this checkout, so the Colab block installs the committed package without any network.
    """
    return {
        **os.environ,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{checkout}.insteadOf",
        "GIT_CONFIG_VALUE_0": REPOSITORY_URL,
    }


# What runs the block in the venv: a stand-in google.colab module, then the block itself.
RUN_BLOCK = """
import sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
exec(compile(open(sys.argv[1]).read(), "colab block", "exec"), {"__name__": "__main__"})
"""


def freeze(python: Path) -> dict[str, str]:
    """Returns ``{name: version}`` of what ``python``'s environment has installed."""
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out.stdout)}


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    starts = ("ERROR", "fatal", "ColabSetupError")
    errors = [line for line in lines if line.startswith(starts) or " stopped: " in line]
    return (errors or lines or ["?"])[-1][:200]


def run_set(name: str, packages: list[str], root: Path, work: Path) -> dict:
    """Returns one row of the table: ``packages`` preinstalled, the package, the notebooks run."""
    venv = work / name
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    row: dict = {"set": name, "preinstalled": packages, "notebooks": {}}
    print(f"[{name}] preinstalling {' '.join(packages)}", flush=True)
    _pip(python, "--upgrade", "pip")
    done = _pip(python, *packages)
    if done.returncode != 0:
        row["install"] = f"preinstall failed: {_last_line(done.stderr)}"
        return row
    before = freeze(python)
    block = work / f"{name}_colab_block.py"
    block.write_text(colab_block(root / "notebooks" / "01_trainable_layers.ipynb"))
    print(f"[{name}] installing tl-helpers with the notebooks' Colab block", flush=True)
    done = subprocess.run(
        [str(python), "-c", RUN_BLOCK, str(block)],
        capture_output=True,
        text=True,
        env=simulated_colab_env(root),
        cwd=work,  # not the checkout: its tl_helpers.egg-info would count as installed
    )
    after = freeze(python)
    row["versions"] = {package: after.get(package) for package in WATCHED}
    row["python"] = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if done.returncode != 0 or "tl-helpers" not in after:
        row["install"] = f"failed: {_last_line(done.stderr + done.stdout)}"
        return row
    changed = [
        f"{package} {version} -> {after.get(package)}"
        for package, version in before.items()
        if after.get(package) != version
    ]
    row["install"] = "changed " + ", ".join(changed) if changed else "nothing preinstalled changed"
    if done.stdout.strip():
        row["install"] += f" (said: {done.stdout.strip()})"
    # what executes the notebooks here (Colab has it already; the others get it now)
    _pip(python, "nbclient>=0.10", "nbformat")
    output = work / f"{name}_runs"
    env = {**os.environ, "TL_PROFILE": "ci", "TL_OUTPUT_DIR": str(output)}
    for number in NOTEBOOKS:
        notebook = next((root / "notebooks").glob(f"{number}_*.ipynb"))
        print(f"[{name}] executing {notebook.name} (waits for {LOCK})", flush=True)
        done = subprocess.run(
            ["flock", LOCK, str(python), "-m", "course_tools.run", str(notebook)],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,  # so that `helpers` is the installed package, not this checkout's folder
        )
        row["notebooks"][number] = (
            "passed" if done.returncode == 0 else f"failed: {_last_line(done.stderr)}"
        )
    return row


def table(rows: list[dict]) -> str:
    """Returns the rows as a Markdown table (set, versions, install, each notebook)."""
    lines = [
        "| set | Python | TensorFlow | Keras | ipywidgets | Colab install | "
        + " | ".join(NOTEBOOKS)
        + " |",
        "|" + "---|" * (5 + len(NOTEBOOKS) + 1),
    ]
    for row in rows:
        versions = row.get("versions", {})
        cells = [
            row["set"],
            row.get("python", "-"),
            *(str(versions.get(package, "-")) for package in WATCHED),
            row["install"],
            *(row["notebooks"].get(number, "not run") for number in NOTEBOOKS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_tools.compat", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "sets", nargs="*", help=f"of {list(VERSION_SETS)} (default: all, unless --set is given)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=PKG,PKG",
        help="another set, e.g. tf217=tensorflow==2.17.1,keras==3.5.0,ipykernel",
    )
    parser.add_argument("--dir", type=Path, help="where the environments go (a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the environments afterwards")
    args = parser.parse_args(argv)
    names = args.sets or ([] if args.set else list(VERSION_SETS))
    sets = {name: VERSION_SETS[name] for name in names if name in VERSION_SETS}
    unknown = [name for name in args.sets if name not in VERSION_SETS]
    if unknown:
        parser.error(f"unknown set(s) {unknown}; known: {list(VERSION_SETS)}")
    for extra in args.set:
        name, _, packages = extra.partition("=")
        sets[name] = packages.split(",")
    root = Path(__file__).resolve().parents[1]
    work = args.dir or Path(tempfile.mkdtemp(prefix="tl-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name, packages in sets.items():
            rows.append(run_set(name, packages, root, work))
            (work / "compat.json").write_text(json.dumps(rows, indent=1))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if not args.keep:
            for name in sets:
                shutil.rmtree(work / name, ignore_errors=True)
    print(table(rows))
    ok = all(
        row["install"].startswith("nothing") and set(row["notebooks"].values()) == {"passed"}
        for row in rows
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
