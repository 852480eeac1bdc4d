"""A headless Chromium for the browser tests (the ``chromium`` fixture, registered by
conftest.py): ``KDK_TEST_CHROMIUM`` or ``/usr/bin/chromium``. When missing, Debian's ``chromium``
is installed with apt-get if we are root and ``CI`` or ``KDK_TEST_INSTALL_BROWSER=1`` is set;
otherwise the browser tests are skipped (failed under CI).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from node import run, skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
APT_TIMEOUT = 900
BROWSER_RUN_TIMEOUT = 60  # the run caps itself at 45 s


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium; installs Debian's ``chromium`` when allowed (see the module doc)."""
    path = os.environ.get("KDK_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    if Path(path).exists():
        return path
    allowed = os.environ.get("CI") or os.environ.get("KDK_TEST_INSTALL_BROWSER") == "1"
    apt_get = shutil.which("apt-get")
    if not (allowed and os.geteuid() == 0 and apt_get):
        skip_or_fail(
            f"{path} not found: install Debian's chromium (apt-get install chromium), set "
            "KDK_TEST_CHROMIUM, or run as root with KDK_TEST_INSTALL_BROWSER=1 to let the tests install it"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([apt_get, "update", "-q"], REPO_ROOT, APT_TIMEOUT, env=env)
    run(
        [apt_get, "install", "-y", "-q", "chromium"],
        REPO_ROOT,
        APT_TIMEOUT,
        env=env,
    )
    if not Path(DEFAULT_CHROMIUM).exists():
        pytest.fail(f"apt-get install chromium did not provide {DEFAULT_CHROMIUM}")
    return DEFAULT_CHROMIUM
