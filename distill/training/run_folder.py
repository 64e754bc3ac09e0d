"""Run folders that distill can prove it made: a marker file is written when one is created, and clean-up
removes only a folder this invocation created, marked with this invocation's own token.

Everything else a path points at (a user's folder that happens to sit two levels above a mistyped checkpoint,
a run of another invocation) is never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

MARKER = ".distill-run"  # JSON: who made the folder, and when
EXPORT_NAME = "student"  # the export inside a run folder
CHECKPOINTS = "checkpoints"  # the selection checkpoints inside a run folder: best-step=N.ckpt and last.ckpt
BEST_PATTERN = "best-{step}"  # ModelCheckpoint's filename for the best checkpoint


def find_run_folder(path: Path) -> Path | None:
    """The distill run folder holding `path` (the nearest parent with a marker), or None."""
    return next((parent for parent in Path(path).expanduser().resolve().parents if (parent / MARKER).is_file()), None)


@dataclass
class CreatedRunFolder:
    """A run folder made by this invocation, with the parents mkdir had to make for it.

    Attributes:
        path: the run folder.
        token: written into its marker; `discard` removes the folder only if the marker still holds it.
        made_parents: parent folders that did not exist before, innermost first, removed with it if empty.
    """

    path: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    made_parents: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, path: Path) -> CreatedRunFolder:
        """Make `path` (it must not exist yet) and mark it as this invocation's.

        Raises:
            FileExistsError: the folder already exists; it is left untouched.
        """
        path = Path(path).expanduser().absolute()
        made = [parent for parent in path.parents if not parent.exists()]
        path.mkdir(parents=True, exist_ok=False)
        folder = cls(path, made_parents=made)
        stamp = {"token": folder.token, "created": datetime.now(timezone.utc).isoformat(), "pid": os.getpid()}
        (path / MARKER).write_text(json.dumps(stamp))
        return folder

    def owned(self) -> bool:
        """True while the folder still carries this invocation's marker."""
        try:
            return json.loads((self.path / MARKER).read_text()).get("token") == self.token
        except (OSError, ValueError):
            return False

    def discard(self) -> bool:
        """Remove the folder if this invocation made it, it is still marked as ours and it holds no checkpoint.

        Returns:
            True when the folder was removed.
        """
        if not self.owned() or any(self.path.rglob("*.ckpt")):
            return False
        shutil.rmtree(self.path)
        for parent in self.made_parents:  # innermost first; rmdir refuses a folder anything else has written into
            try:
                parent.rmdir()
            except OSError:
                break
        return True


def remove_superseded_best(run_dir: Path, best: str) -> None:
    """Delete the run's own best-step=N.ckpt files other than `best`: after a resume, the interrupted process may
    have saved a best the resumed run no longer tracks. Only files of that name in a marked run folder go."""
    if not best or not (run_dir / MARKER).is_file():
        return
    keep = Path(best).resolve()
    for stale in (run_dir / CHECKPOINTS).glob("best-step=*.ckpt"):
        if stale.resolve() != keep:
            stale.unlink()
