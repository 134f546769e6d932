"""The run folder's manifest survives an interrupt or a kill at any step of a file write."""

import pytest

from robust_compress.engine import runfolder
from robust_compress.engine.runfolder import RunFolder
from robust_compress.errors import CheckpointError


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt or SIGKILL landing between two steps."""


def _interrupt_at(monkeypatch, step):
    """Raise at the ``step``-th atomic write (0: manifest, 1: the file, 2: manifest again)."""
    real = runfolder.atomic_write_bytes
    calls = []

    def write(path, data):
        calls.append(path)
        if len(calls) - 1 == step:
            raise Interrupt
        return real(path, data)

    monkeypatch.setattr(runfolder, "atomic_write_bytes", write)


@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_replacement_interrupted_at_any_step_still_verifies(tmp_path, monkeypatch, step):
    folder = RunFolder(tmp_path / "run")
    path = folder.write_bytes("checkpoints/last.pt", b"old")
    _interrupt_at(monkeypatch, step)
    with pytest.raises(Interrupt):
        folder.write_bytes("checkpoints/last.pt", b"new")
    folder.verify(path)
    assert path.read_bytes() == (b"old" if step < 2 else b"new")


def test_a_replacement_that_completed_forgets_the_old_checksum(tmp_path):
    folder = RunFolder(tmp_path / "run")
    path = folder.write_bytes("a.bin", b"old")
    folder.write_bytes("a.bin", b"new")
    assert "replacing" not in folder.manifest()
    path.write_bytes(b"old")  # the old bytes put back by hand are no longer accepted
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        folder.verify(path)


def test_a_first_write_interrupted_before_the_file_leaves_no_file(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    _interrupt_at(monkeypatch, 1)
    with pytest.raises(Interrupt):
        folder.write_bytes("b.bin", b"data")
    assert not (tmp_path / "run" / "b.bin").exists()
    assert not list((tmp_path / "run").rglob("*.tmp"))
