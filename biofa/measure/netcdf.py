"""Writing a Dataset as a netCDF4 file others can read: atomically, compressed, CF-minded.

:func:`write_netcdf` is how every biofa file is written (run files, spiking validations): a hidden
temporary file beside the target, flushed and renamed over it (readers never see a partial file),
created with mode ``0o666`` less the umask (as ``open`` would; ``tempfile.mkstemp`` would leave
``0o600``), numeric variables zlib-compressed (level 4), integer variables stored as int32 where
their values fit (CF-1.8's ``int``). :func:`history` is the CF ``history`` line files carry.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from biofa._version import __version__

__all__ = ["history", "write_netcdf"]

_INT32 = np.iinfo(np.int32)


def history(created: str, command: str | None = None) -> str:
    """A CF ``history`` line: when (``created``), what wrote the file, and the command (default
    this process's ``sys.argv``)."""
    command = command or shlex.join(sys.argv) or "python"
    return f"{created}: biofa {__version__}: {command}"


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` atomically to ``path`` (netCDF4, numeric variables zlib level 4).

    A hidden temporary file in the same directory is written, flushed to disk and renamed over
    ``path``, so readers never see a partial file. Parent directories are created. The file is
    created with mode ``0o666`` less the umask, like any other file (not ``mkstemp``'s
    ``0o600``). Integer variables whose values fit are stored as int32 (CF-1.8's ``int``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding: dict[str, dict[str, Any]] = {
        n: {"zlib": True, "complevel": 4} for n, v in ds.data_vars.items() if v.dtype.kind in "fiu"
    }
    for name, var in ds.variables.items():
        if var.dtype.kind == "i" and var.dtype.itemsize > 4 and _fits_int32(var.values):
            encoding.setdefault(str(name), {})["dtype"] = "int32"
    tmp = _new_file(path)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fits_int32(values: np.ndarray) -> bool:
    return values.size == 0 or (_INT32.min <= values.min() and values.max() <= _INT32.max)


def _new_file(path: Path) -> Path:
    """A new hidden file beside ``path``, created with mode 0o666 less the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
