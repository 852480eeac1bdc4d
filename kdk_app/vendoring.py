"""Browser builds vendored from npm into the package, for pages that must work after
``pip install`` on a machine without Node or network (the browser page's Feathers client,
Swagger UI). Each folder's ``vendor.py`` names its pins folder, its vendor folder and its files,
and runs :meth:`Vendoring.main`::

    python <folder>/vendor.py            # npm ci the pins in a temp dir, copy the files
    python <folder>/vendor.py --check    # same install, fail if a committed file differs
    python <folder>/vendor.py --verify   # offline: files match vendor.json and the pins

The pins are a ``package.json`` + ``package-lock.json``; ``npm ci`` checks every tarball
against the lock's integrity hash, so a file equal to the installed one is the published build.
``vendor.json`` in the vendor folder records versions and SHA-256 sums for the offline check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

MANIFEST_NAME = "vendor.json"
NPM_TIMEOUT = 600


class VendoredFile(NamedTuple):
    package: str  # npm package name, pinned in package.json
    source: str  # path inside the package
    target: str  # file name in the vendor folder


class VendorError(RuntimeError):
    """The pins, the npm install or the committed files are not consistent."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Vendoring:
    pins_dir: Path  # holds package.json and package-lock.json
    vendor_dir: Path  # where the files are committed
    files: tuple[VendoredFile, ...]
    script: str  # how to run it, for messages: "kdk_app/static/vendor.py"

    @property
    def label(self) -> str:
        return f"{self.vendor_dir.parent.name}/{self.vendor_dir.name}"

    @property
    def packages(self) -> list[str]:
        return sorted({f.package for f in self.files})

    def pinned_versions(self) -> dict[str, str]:
        """``{package: version}`` from package.json; every pin must be exact."""
        dependencies: dict[str, str] = json.loads((self.pins_dir / "package.json").read_text())[
            "dependencies"
        ]
        for name, version in dependencies.items():
            if not version[:1].isdigit() or any(c in version for c in "^~<>=* |"):
                raise VendorError(f"package.json: {name} must be pinned to an exact version, not {version!r}")
        return dict(dependencies)

    def npm_install(self, work_dir: Path, npm: str | None = None) -> Path:
        """``npm ci`` the pins in ``work_dir`` (never in the package tree); returns node_modules."""
        npm = npm or shutil.which("npm")
        if npm is None:
            raise VendorError("npm is not on PATH")
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(self.pins_dir / name, work_dir / name)
        # --ignore-scripts: we only read files out of the tarballs, nothing needs to run.
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
        proc = subprocess.run(
            command, cwd=work_dir, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            raise VendorError(f"npm ci failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return work_dir / "node_modules"

    def installed_files(self, node_modules: Path, pins: dict[str, str]) -> dict[str, Path]:
        """``{target: source path}``, after checking the installed versions are the pins."""
        for package in self.packages:
            if package not in pins:
                raise VendorError(f"{package} is vendored but not pinned in package.json")
            installed = json.loads((node_modules / package / "package.json").read_text())["version"]
            if installed != pins[package]:
                raise VendorError(f"npm installed {package}@{installed}, package.json pins {pins[package]}")
        return {f.target: node_modules / f.package / f.source for f in self.files}

    def build_manifest(self, files: dict[str, Path], pins: dict[str, str]) -> dict[str, Any]:
        return {
            "generated_by": self.script,
            "packages": {package: pins[package] for package in self.packages},
            "files": {
                f.target: {"package": f.package, "source": f.source, "sha256": sha256(files[f.target])}
                for f in self.files
            },
        }

    def write_vendor(self, files: dict[str, Path], manifest: dict[str, Any]) -> None:
        self.vendor_dir.mkdir(parents=True, exist_ok=True)
        expected = set(files) | {MANIFEST_NAME}
        for stale in sorted(p for p in self.vendor_dir.iterdir() if p.name not in expected):
            logger.info("removing %s (no longer vendored)", stale.name)
            stale.unlink()
        for f in self.files:
            shutil.copyfile(files[f.target], self.vendor_dir / f.target)
            logger.info("copied %s/%s -> %s/%s", f.package, f.source, self.label, f.target)
        (self.vendor_dir / MANIFEST_NAME).write_text(manifest_text(manifest))

    def compare_vendor(self, files: dict[str, Path], manifest: dict[str, Any]) -> list[str]:
        """Differences between the committed vendor folder and a fresh install (empty: identical)."""
        problems = []
        for target, source in files.items():
            committed = self.vendor_dir / target
            if not committed.is_file():
                problems.append(f"{self.label}/{target} is missing")
            elif committed.read_bytes() != source.read_bytes():
                problems.append(f"{self.label}/{target} differs from the npm package file {source}")
        expected = set(files) | {MANIFEST_NAME}
        extra = sorted(p.name for p in self.vendor_dir.iterdir() if p.name not in expected)
        problems += [f"{self.label}/{name} is not produced by vendor.py" for name in extra]
        manifest_path = self.vendor_dir / MANIFEST_NAME
        if not manifest_path.is_file() or manifest_path.read_text() != manifest_text(manifest):
            problems.append(f"{self.label}/{MANIFEST_NAME} is stale")
        return problems

    def verify_offline(self) -> list[str]:
        """Without npm: every file listed in vendor.json has its SHA-256, and versions equal the pins."""
        manifest_path = self.vendor_dir / MANIFEST_NAME
        if not manifest_path.is_file():
            return [f"{self.label}/{MANIFEST_NAME} is missing: run {self.script}"]
        manifest = json.loads(manifest_path.read_text())
        pins = self.pinned_versions()
        problems = []
        for package in self.packages:
            vendored = manifest["packages"].get(package)
            if vendored != pins.get(package):
                problems.append(f"{package}: vendored {vendored}, package.json pins {pins.get(package)}")
        listed = manifest["files"]
        for f in self.files:
            entry = listed.get(f.target)
            path = self.vendor_dir / f.target
            if entry is None:
                problems.append(f"{f.target} is not listed in {MANIFEST_NAME}")
            elif (entry["package"], entry["source"]) != (f.package, f.source):
                problems.append(
                    f"{f.target}: {MANIFEST_NAME} says it came from {entry['package']}/{entry['source']}"
                )
            elif not path.is_file():
                problems.append(f"{self.label}/{f.target} is missing")
            elif sha256(path) != entry["sha256"]:
                problems.append(f"{self.label}/{f.target} does not match its SHA-256 in {MANIFEST_NAME}")
        return problems

    def main(self, argv: list[str] | None = None, description: str = "") -> int:
        parser = argparse.ArgumentParser(description=description)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true", help="npm ci and compare; change nothing")
        mode.add_argument("--verify", action="store_true", help="offline: check files against vendor.json")
        parser.add_argument("--npm", help="npm executable (default: npm on PATH)")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="vendor.py: %(message)s")
        try:
            if args.verify:
                problems = self.verify_offline()
            else:
                pins = self.pinned_versions()
                with tempfile.TemporaryDirectory(prefix="kdk-vendor-") as tmp:
                    files = self.installed_files(self.npm_install(Path(tmp), args.npm), pins)
                    manifest = self.build_manifest(files, pins)
                    if not args.check:
                        self.write_vendor(files, manifest)
                        return 0
                    problems = self.compare_vendor(files, manifest)
        except VendorError as error:
            logger.error("%s", error)
            return 2
        for problem in problems:
            logger.error("%s", problem)
        if problems:
            logger.error("%s/ is out of date: run python %s", self.label, self.script)
            return 1
        logger.info("%s/ matches the pinned npm packages", self.label)
        return 0


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2) + "\n"
