"""The run folder: where a recipe's outputs go, written atomically, with a checksum manifest.

Nothing a user made is overwritten silently: an existing folder is refused unless the caller
resumes it or forces a fresh start, and ``force`` only ever clears a folder that holds a
robust-compress run (it has ``manifest.json``); any other non-empty folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from robust_compress.errors import CheckpointError, RunError, UserError
from robust_compress.files import atomic_write_bytes, sha256
from robust_compress.training import distributed

MANIFEST = "manifest.json"
REPLACING = "replacing"  # files whose replacement may have been interrupted: their old checksum
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class RunFolder:
    """A run's output folder.

    Args:
        path: The folder.
        resume: Continue a run that is there.
        force: Start afresh, clearing a previous run in ``path``.

    Raises:
        UserError: The folder exists and neither flag allows it, is not a run folder,
            lies inside the installed package, or cannot be written.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, force: bool = False):
        self.path = Path(path).resolve()
        _refuse_package_dir(self.path)
        self._claim(resume, force)
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"
        for folder in (self.checkpoints, self.plots):
            folder.mkdir(parents=True, exist_ok=True)

    def _claim(self, resume: bool, force: bool) -> None:
        exists = self.path.exists() and any(self.path.iterdir())
        is_run = (self.path / MANIFEST).is_file()
        if exists and not is_run:
            raise UserError(
                f"{self.path} exists and is not a robust-compress run folder; choose another "
                "--out (nothing was written)."
            )
        if exists and not (resume or force):
            raise UserError(
                f"run folder {self.path} exists; pass --resume to continue it or --force to "
                "start over (its contents will be deleted)."
            )
        if force and exists and not resume:
            shutil.rmtree(self.path)
            is_run = False  # a fresh folder: it gets a new manifest below
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to run folder {self.path}: {exc.strerror}.") from None
        if not is_run:
            self._write_manifest({"files": {}})

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write a file atomically and record its checksum in the manifest.

        Three atomic steps, so that an interrupt or a kill between any two of them leaves a
        folder that verifies: the manifest first records the new checksum with the old one
        kept under ``replacing``, then the file is replaced, then ``replacing`` is dropped.
        """
        path = self.path / name
        rel = self._relative(path)
        manifest = self.manifest()
        previous = manifest["files"].get(rel)
        manifest["files"][rel] = hashlib.sha256(data).hexdigest()
        if previous is not None:
            manifest.setdefault(REPLACING, {})[rel] = previous
        self._write_manifest(manifest)
        atomic_write_bytes(path, data)
        if manifest.get(REPLACING, {}).pop(rel, None) is not None:
            if not manifest[REPLACING]:
                del manifest[REPLACING]
            self._write_manifest(manifest)
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file atomically (UTF-8) and record its checksum."""
        return self.write_bytes(name, text.encode("utf-8"))

    def record(self, path: Path) -> None:
        """Record ``path``'s checksum (a file written by someone else, e.g. ONNX export)."""
        manifest = self.manifest()
        manifest["files"][self._relative(path)] = sha256(path)
        self._write_manifest(manifest)

    def verify(self, path: Path) -> None:
        """Raise :class:`CheckpointError` when ``path`` does not match its recorded checksum.

        A file whose replacement was interrupted matches either its old or its new checksum.
        """
        rel = self._relative(path)
        manifest = self.manifest()
        expected = manifest["files"].get(rel)
        if expected is None:
            raise CheckpointError(f"{path} is not recorded in {self.path / MANIFEST}.")
        accepted = {expected, manifest.get(REPLACING, {}).get(rel)}
        if not Path(path).is_file() or sha256(path) not in accepted:
            raise CheckpointError(
                f"{path} is corrupt or truncated (its checksum differs from the manifest); "
                "delete it to resume from an earlier checkpoint, or start over with --force."
            )

    def manifest(self) -> dict:
        """The manifest: ``{"files": {relative path: sha256}}``."""
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path / MANIFEST} is unreadable: {exc}") from None

    def _relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.path).as_posix()

    def _write_manifest(self, manifest: dict) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.path / MANIFEST, data)


def _refuse_package_dir(path: Path) -> None:
    if path == PACKAGE_DIR or PACKAGE_DIR in path.parents:
        raise UserError(
            f"--out {path} lies inside the installed package ({PACKAGE_DIR}); choose a folder "
            "outside it, e.g. runs/NAME."
        )


class ReadOnlyFolder(RunFolder):
    """Rank 0's run folder as another rank sees it: read and verified, never written.

    Args:
        path: The run folder rank 0 claimed.
    """

    def __init__(self, path: str | Path):  # no claim: rank 0 owns the folder
        self.path = Path(path).resolve()
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Refuse: only rank 0 writes files."""
        raise RunError(
            f"rank {distributed.rank()} tried to write {name}; only rank 0 writes the run folder."
        )

    def record(self, path: Path) -> None:
        """Refuse: only rank 0 writes the manifest."""
        raise RunError(
            f"rank {distributed.rank()} tried to record {path}; only rank 0 writes the manifest."
        )
