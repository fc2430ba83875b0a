"""A row's files: its checkpoint and its result JSON, written whole or not at all.

Each file is written to a temporary file in the same folder and renamed over the old one
(``os.replace``, atomic on POSIX and Windows), so a run killed mid-write leaves the previous
version, never half of one.  A file that cannot be read all the same (a disk that filled
up, a copy cut short) is a :class:`ResumeError` that names the file and says that
``--no-resume`` starts the row over; so is a checkpoint made with other settings
(:func:`differences` says which).
"""

import json
import os
import pickle
from pathlib import Path

__all__ = [
    "ResumeError",
    "differences",
    "load_checkpoint",
    "read_record",
    "save_checkpoint",
    "write_record",
]

START_OVER = "--no-resume starts this row over (or pass another --out)"


class ResumeError(Exception):
    """A row's saved state that this run cannot resume from."""


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the file (a rename stays on one file system), one per process (shards)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict) -> None:
    """Pickle ``state`` to ``path``, atomically."""
    _write_atomic(path, pickle.dumps(state))


def load_checkpoint(path: Path, keys: tuple[str, ...]) -> dict:
    """The state saved at ``path``, which must hold ``keys``."""
    try:
        state = pickle.loads(path.read_bytes())
    except Exception as error:  # a truncated or overwritten pickle fails in many ways
        raise ResumeError(
            f"the checkpoint {path} cannot be read ({type(error).__name__}: {error}); {START_OVER}"
        ) from error
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise ResumeError(
            f"the checkpoint {path} lacks {', '.join(missing)} (an earlier version of the "
            f"runner wrote it, or another program); {START_OVER}"
        )
    return state


def write_record(path: Path, record: dict) -> None:
    """Write a row's JSON to ``path``, atomically."""
    _write_atomic(path, json.dumps(record, indent=1).encode())


def read_record(path: Path) -> dict | None:
    """The row's JSON at ``path``, or ``None`` if there is none."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ResumeError(
            f"the result file {path} cannot be read ({error}); {START_OVER}"
        ) from error


def differences(saved: dict, wanted: dict) -> str:
    """``"key <saved> there, <wanted> here"`` for every setting that differs, joined by
    commas (empty if none does)."""
    keys = sorted(saved.keys() | wanted.keys())
    return ", ".join(
        f"{key} {saved.get(key)!r} there, {wanted.get(key)!r} here"
        for key in keys
        if saved.get(key) != wanted.get(key)
    )
