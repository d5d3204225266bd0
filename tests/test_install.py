"""make setup's install is quiet: no setuptools banner on the learner's first `make lab`."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_prints_no_banner_and_the_wheel_holds_only_the_packages(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, capture_output=True)  # as make setup
    # the install make setup runs, without the dependencies (they are not what prints the banner)
    install = subprocess.run(
        [*pip, "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    printed = install.stdout + install.stderr
    assert "BuildBackendWarning" not in printed and "!!" not in printed, printed
    found = subprocess.run(
        [python, "-c", "import helpers; print(helpers.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert Path(found.stdout.strip()) == ROOT / "helpers" / "__init__.py"

    # A wheel (what Colab's git install builds) holds the two packages and their metadata only:
    # helpers, and course_tools (make compat runs course_tools.run where the wheel is installed).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tl_helpers-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    metadata = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"
    assert tops == {"helpers", "course_tools", metadata}
