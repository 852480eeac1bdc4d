"""Building the package as a user's ``pip install`` does, and re-checking vendored npm builds:
shared by the tests of the browser page and of Swagger UI, whose files must ship in both
archives."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from node import NPM, NPM_TIMEOUT, run, skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[1]


def sdist_and_wheel_names(tmp_path: Path) -> tuple[set[str], set[str]]:
    """The file names in an sdist of the tree and in the wheel built from that sdist."""
    source = tmp_path / "src"
    source.mkdir()
    # A copy, so that building leaves no build/ or egg-info in the work tree.
    for name in ("setup.py", "setup.cfg", "MANIFEST.in", "README.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "kdk_app",
        source / "kdk_app",
        ignore=shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc"),
    )
    dist = tmp_path / "dist"
    run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)], source, 120)
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    # With build isolation, as `pip install kdk-app` from an sdist does (fetches setuptools).
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(sdist)], tmp_path, 180)
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = set(archive.namelist())
    return sdist_names, wheel_names


def assert_vendored_files_are_the_pinned_npm_builds(script: Path) -> None:
    """``vendor.py --check``: a fresh ``npm ci`` of the pins gives the committed files."""
    if NPM is None:
        skip_or_fail(f"npm must be on PATH to compare what {script} vendored with the pinned npm packages")
    proc = subprocess.run(
        [sys.executable, str(script), "--check", "--npm", NPM],
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT + 30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
