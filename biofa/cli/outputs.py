"""Where runs are written, checked before anything trains.

* :func:`check_out_dir`: ``--out`` is a folder this process can create and write into (not a
  file, not ``/proc/self``, not read-only), else one line.
* :func:`plan`: what each run does to the files already there. A run replaces its own earlier file
  (same resolved configuration and spec; said in the log) but never another configuration's file
  -- that is refused, naming what differs, unless ``--overwrite``. Without ``--resume`` an
  unfinished run's checkpoint is never started over silently (refused unless ``--overwrite``).
  With ``--resume``: a run with a checkpoint continues (:func:`biofa.train.fit` checks that the
  checkpoint is of this configuration); a complete run is skipped; a run with neither starts at
  step 0 (said in the log) -- unless a checkpoint of the same coordinates but another
  configuration is there, which is refused naming what differs (``--resume --set lr=...``
  would otherwise start a new run instead of changing the old one).
* :class:`RunLock`: one process at a time per run file (``.<run>.nc.lock`` beside it, holding the
  host and process id; a lock left by a dead process on this host is taken over).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from biofa.cli import provenance
from biofa.cli.spec import Point, Spec
from biofa.train.resume import RESUMABLE, changes, describe, plain

__all__ = ["Action", "RunLock", "check_out_dir", "plan"]

log = logging.getLogger(__name__)


def check_out_dir(out_dir: Path, *, create: bool = True) -> None:
    """``ValueError`` (one line) unless ``out_dir`` is, or can be made, a writable folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file, not a folder")
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out_dir}: {existing} is a file, so the folder cannot be made")
    if not create:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out_dir}: {existing} is not writable")
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".biofa-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class Action:
    """What a run will do: ``"new"``, ``"replace"`` (its own earlier file), ``"resume"`` (from
    its checkpoint) or ``"skip"`` (complete, with ``--resume``)."""

    kind: str
    point: Point
    path: Path


def plan(
    spec: Spec, points: list[Point], out_dir: Path, *, resume: bool, overwrite: bool
) -> list[Action]:
    """Each point's :class:`Action`; ``ValueError`` (one line) for a file it must not replace."""
    actions = []
    for point in points:
        path = out_dir / f"{point.name}.nc"
        ckpt = path.with_suffix(".ckpt")
        ours = plain(provenance.run_config(spec, point))
        if resume and ckpt.exists():
            actions.append(Action("resume", point, path))
            continue
        if resume and not path.exists():
            _refuse_other_checkpoints(path, ours, overwrite)
        kind = "new"
        if path.exists():
            config, sha, status = _stored(path)
            diff = _difference(config, sha, ours, spec.sha256)
            if resume and status == "complete" and not diff and not overwrite:
                actions.append(Action("skip", point, path))
                continue
            if diff and not overwrite:
                if config is None:
                    raise ValueError(
                        f"{path} exists and is not a readable biofa run file; replace it with "
                        "--overwrite, or write elsewhere with --out"
                    )
                if resume and status == "complete" and set(diff) <= _allowed_keys():
                    raise ValueError(
                        f"--resume: {path} is complete and has no checkpoint to continue from "
                        f"({describe(diff)}); train it again from step 0 with --overwrite"
                    )
                raise ValueError(
                    f"{path} holds another configuration ({describe(diff)}); replace it with "
                    "--overwrite, or write elsewhere with --out"
                )
            kind = "replace"
            if ckpt.exists() and status != "complete" and not overwrite:
                raise ValueError(
                    f"{ckpt} holds an unfinished run of this configuration ({status}); continue "
                    "it with --resume, or start over with --overwrite"
                )
        elif ckpt.exists() and not resume and not overwrite:
            raise ValueError(
                f"{ckpt} holds an unfinished run of this configuration; continue it with "
                "--resume, or start over with --overwrite"
            )
        actions.append(Action(kind, point, path))
    return actions


def _allowed_keys() -> set[str]:
    return {f"train.{key}" for key in RESUMABLE}


def _stored(path: Path) -> tuple[dict | None, str, str]:
    """``(run_config, spec_sha256, status)`` of an existing run file (``None`` config when it is
    not a readable biofa run file)."""
    try:
        with xr.open_dataset(path) as ds:
            config = json.loads(str(ds["run_config"].values.reshape(-1)[0]))
            config.pop("feedback", None)  # derived from the circuit by the recorder
            return config, str(ds.attrs.get("spec_sha256", "")), str(ds.attrs.get("status", ""))
    except Exception:  # noqa: BLE001 - anything unreadable is "not a biofa run file"
        return None, "", ""


def _difference(config: dict | None, sha: str, ours: dict, our_sha: str) -> dict[str, tuple]:
    if config is None:
        return {"file": ("unreadable", "")}
    allowed, refused = changes(config, ours)
    diff = {**refused, **allowed}
    if sha and sha != our_sha:
        diff["spec_sha256"] = (sha, our_sha)
    return dict(sorted(diff.items()))


def _refuse_other_checkpoints(path: Path, ours: dict, overwrite: bool) -> None:
    """With ``--resume`` and no checkpoint of this run: refuse when a checkpoint of the same
    coordinates (the name without its ``_cfg-`` part) holds another configuration."""
    if overwrite:
        return
    stem = path.stem.split("_cfg-")[0]
    for other in sorted(path.parent.glob(f"{stem}*.ckpt")):
        if other.stem != stem and not other.stem.startswith(f"{stem}_cfg-"):
            continue
        config = _checkpoint_config(other)
        if config is None:
            continue
        allowed, refused = changes(config, ours)
        if refused:
            raise ValueError(
                f"--resume: no checkpoint {path.with_suffix('.ckpt')} of this configuration; "
                f"{other} is of another one ({describe(refused)}), and a resumed run may change "
                f"only {', '.join(RESUMABLE)} (drop --resume to train this configuration anew)"
            )


def _checkpoint_config(path: Path) -> dict | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return state["identity"]["config"]
    except Exception:  # noqa: BLE001 - an unreadable or old checkpoint identifies nothing
        return None


class RunLock:
    """``.<run>.lock`` beside a run file for as long as one process trains it (module doc)."""

    def __init__(self, run: Path):
        self.path = run.with_name(f".{run.name}.lock")
        self.mine = f"{socket.gethostname()} {os.getpid()}"
        self.held = False

    def __enter__(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise ValueError(self._busy()) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self.mine + "\n")
            self.held = True
            return self
        raise ValueError(self._busy())

    def __exit__(self, *exc: Any) -> None:
        if self.held and self._owner() == self.mine:
            self.path.unlink(missing_ok=True)
        self.held = False

    def _owner(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def _stale(self) -> bool:
        host, _, pid = self._owner().partition(" ")
        if host != socket.gethostname() or not pid.isdigit():
            return not host  # an empty lock: its writer died while writing it
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _busy(self) -> str:
        owner = self._owner() or "another process"
        return (
            f"{self.path.parent / self.path.name[1:-5]}: another biofa process ({owner}) is "
            f"training this run now; wait for it, or remove {self.path} if it is not running"
        )
