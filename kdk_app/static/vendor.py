"""Copy the pinned browser builds of the Feathers client and socket.io-client into public/vendor/.

The page must work after ``pip install`` on a machine without Node, so the builds are committed
under ``public/vendor/`` and this script is only how they get there (see README.md)::

    python kdk_app/static/vendor.py            # npm ci the pins in a temp dir, copy the files
    python kdk_app/static/vendor.py --check    # same install, fail if a committed file differs
    python kdk_app/static/vendor.py --verify   # offline: files match vendor.json and the pins

The pins are ``package.json`` + ``package-lock.json`` beside this file; ``npm ci`` checks every
tarball against the lock's integrity hash, so a file equal to the installed one is the published
build. ``public/vendor/vendor.json`` records versions and SHA-256 sums for the offline check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger("kdk_app.static.vendor")

HERE = Path(__file__).resolve().parent
VENDOR_DIR = HERE / "public" / "vendor"
MANIFEST_NAME = "vendor.json"
NPM_TIMEOUT = 600


class VendoredFile(NamedTuple):
    package: str  # npm package name, pinned in package.json
    source: str  # path inside the package
    target: str  # file name in public/vendor/


FILES = (
    # UMD build: window.feathers with feathers.socketio, .rest and .authentication built in.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js", "feathers.min.js"),
    # feathers.min.js names this file in its first line.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js.LICENSE.txt", "feathers.min.js.LICENSE.txt"),
    VendoredFile("@feathersjs/client", "LICENSE", "feathers.LICENSE"),
    # UMD build: window.io.
    VendoredFile("socket.io-client", "dist/socket.io.min.js", "socket.io.min.js"),
    # socket.io.min.js ends with a sourceMappingURL; without it devtools log a 404.
    VendoredFile("socket.io-client", "dist/socket.io.min.js.map", "socket.io.min.js.map"),
    VendoredFile("socket.io-client", "LICENSE", "socket.io-client.LICENSE"),
)


class VendorError(RuntimeError):
    """The pins, the npm install or the committed files are not consistent."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_versions(static_dir: Path = HERE) -> dict[str, str]:
    """``{package: version}`` from package.json; every pin must be exact."""
    dependencies = json.loads((static_dir / "package.json").read_text())["dependencies"]
    for name, version in dependencies.items():
        if not version[:1].isdigit() or any(c in version for c in "^~<>=* |"):
            raise VendorError(f"package.json: {name} must be pinned to an exact version, not {version!r}")
    return dict(dependencies)


def npm_install(work_dir: Path, npm: str | None = None, static_dir: Path = HERE) -> Path:
    """``npm ci`` the pins in ``work_dir`` (never in the package tree); returns node_modules."""
    npm = npm or shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH")
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(static_dir / name, work_dir / name)
    # --ignore-scripts: we only read files out of the tarballs, nothing needs to run.
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
    proc = subprocess.run(
        command, cwd=work_dir, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise VendorError(f"npm ci failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return work_dir / "node_modules"


def installed_files(node_modules: Path, pins: dict[str, str]) -> dict[str, Path]:
    """``{target: source path}`` for FILES, after checking the installed versions are the pins."""
    for package in sorted({f.package for f in FILES}):
        if package not in pins:
            raise VendorError(f"{package} is vendored but not pinned in package.json")
        installed = json.loads((node_modules / package / "package.json").read_text())["version"]
        if installed != pins[package]:
            raise VendorError(f"npm installed {package}@{installed}, package.json pins {pins[package]}")
    return {f.target: node_modules / f.package / f.source for f in FILES}


def build_manifest(files: dict[str, Path], pins: dict[str, str]) -> dict[str, Any]:
    return {
        "generated_by": "kdk_app/static/vendor.py",
        "packages": {package: pins[package] for package in sorted({f.package for f in FILES})},
        "files": {
            f.target: {"package": f.package, "source": f.source, "sha256": sha256(files[f.target])}
            for f in FILES
        },
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2) + "\n"


def write_vendor(files: dict[str, Path], manifest: dict[str, Any], vendor_dir: Path = VENDOR_DIR) -> None:
    vendor_dir.mkdir(parents=True, exist_ok=True)
    expected = set(files) | {MANIFEST_NAME}
    for stale in sorted(p for p in vendor_dir.iterdir() if p.name not in expected):
        logger.info("removing %s (no longer vendored)", stale.name)
        stale.unlink()
    for f in FILES:
        shutil.copyfile(files[f.target], vendor_dir / f.target)
        logger.info("copied %s/%s -> public/vendor/%s", f.package, f.source, f.target)
    (vendor_dir / MANIFEST_NAME).write_text(manifest_text(manifest))


def compare_vendor(
    files: dict[str, Path], manifest: dict[str, Any], vendor_dir: Path = VENDOR_DIR
) -> list[str]:
    """Differences between the committed vendor dir and a fresh install (empty: identical)."""
    problems = []
    for target, source in files.items():
        committed = vendor_dir / target
        if not committed.is_file():
            problems.append(f"public/vendor/{target} is missing")
        elif committed.read_bytes() != source.read_bytes():
            problems.append(f"public/vendor/{target} differs from the npm package file {source}")
    extra = sorted(p.name for p in vendor_dir.iterdir() if p.name not in set(files) | {MANIFEST_NAME})
    problems += [f"public/vendor/{name} is not produced by vendor.py" for name in extra]
    manifest_path = vendor_dir / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.read_text() != manifest_text(manifest):
        problems.append(f"public/vendor/{MANIFEST_NAME} is stale")
    return problems


def verify_offline(vendor_dir: Path = VENDOR_DIR, static_dir: Path = HERE) -> list[str]:
    """Without npm: every file listed in vendor.json has its SHA-256, and versions equal the pins."""
    problems = []
    manifest_path = vendor_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"public/vendor/{MANIFEST_NAME} is missing: run vendor.py"]
    manifest = json.loads(manifest_path.read_text())
    pins = pinned_versions(static_dir)
    for package in sorted({f.package for f in FILES}):
        vendored = manifest["packages"].get(package)
        if vendored != pins.get(package):
            problems.append(f"{package}: vendored {vendored}, package.json pins {pins.get(package)}")
    listed = manifest["files"]
    for f in FILES:
        entry = listed.get(f.target)
        path = vendor_dir / f.target
        if entry is None:
            problems.append(f"{f.target} is not listed in {MANIFEST_NAME}")
        elif (entry["package"], entry["source"]) != (f.package, f.source):
            problems.append(
                f"{f.target}: {MANIFEST_NAME} says it came from {entry['package']}/{entry['source']}"
            )
        elif not path.is_file():
            problems.append(f"public/vendor/{f.target} is missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"public/vendor/{f.target} does not match its SHA-256 in {MANIFEST_NAME}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="npm ci and compare; change nothing")
    mode.add_argument("--verify", action="store_true", help="offline: check files against vendor.json")
    parser.add_argument("--npm", help="npm executable (default: npm on PATH)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="vendor.py: %(message)s")
    try:
        if args.verify:
            problems = verify_offline()
        else:
            pins = pinned_versions()
            with tempfile.TemporaryDirectory(prefix="kdk-vendor-") as tmp:
                files = installed_files(npm_install(Path(tmp), args.npm), pins)
                manifest = build_manifest(files, pins)
                if not args.check:
                    write_vendor(files, manifest)
                    return 0
                problems = compare_vendor(files, manifest)
    except VendorError as error:
        logger.error("%s", error)
        return 2
    for problem in problems:
        logger.error("%s", problem)
    if problems:
        logger.error("public/vendor/ is out of date: run python kdk_app/static/vendor.py")
        return 1
    logger.info("public/vendor/ matches the pinned npm packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
