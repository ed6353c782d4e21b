"""Files newtoncnn writes: atomic replacement, JSON, and its versioned ``.npz`` archives.

An archive is an ``.npz`` file of arrays plus one array ``meta`` holding a
JSON string with at least ``format`` (what the file is) and ``version`` (of
that format); no pickle inside. Checkpoints (:mod:`newtoncnn.checkpoint`) and
saved models (:meth:`newtoncnn.estimator.CNNClassifier.save`) are archives.
Every file is written atomically: a temporary file in the same directory,
flushed and fsync'ed, then renamed over the target, so that a crash leaves
either the previous file or the new one, never a partial file.
"""
import contextlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["atomic_write", "atomic_savez", "dumps_json", "write_json", "write_archive",
           "read_archive"]


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write, mode="wb"):
    """Create or replace ``path`` atomically with what ``write(file)`` writes.

    ``write`` gets a file object opened in ``mode`` on a temporary file in
    the same directory, which is flushed, fsync'ed and renamed over ``path``
    (``os.replace``); the directory is fsync'ed too, where the system allows
    it, so that the rename itself is durable. On any exception the temporary
    file is removed and ``path`` is left as it was. Returns ``path`` as a str.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write : callable
        ``write(file)`` writes the contents into the open file.
    mode : str, default "wb"
        Mode of the temporary file (``"w"`` for text).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    return path


def atomic_savez(path, arrays):
    """``np.savez(path, **arrays)``, atomically; the name is used as given (no ``.npz``
    appended). Returns ``path`` as a str.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    arrays : dict of str to array_like
        The arrays, by name.
    """
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _json_default(value):
    """Fallback of ``json.dumps``: numpy scalars, arrays and dtypes as Python objects;
    anything else (an odd object a hook put in a history row) as its ``str``, so that a
    file can always be written."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    return str(value)


def _finite(value):
    """``value`` with non-finite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(obj, strict=False, **kwargs):
    """JSON text of ``obj``.

    By default NaN and Inf are written as JavaScript's ``NaN``/``Infinity``,
    which Python's ``json`` reads back, so floats round-trip exactly (what
    archives need); ``strict=True`` writes them as ``null``, for files other
    programs read.

    Parameters
    ----------
    obj : object
        Dicts, lists, strings, numbers, booleans, None, numpy scalars and arrays.
    strict : bool, default False
        Write NaN and Inf as ``null``.
    **kwargs
        Passed to ``json.dumps`` (e.g. ``indent``).
    """
    if strict:
        return json.dumps(_finite(obj), default=_json_default, allow_nan=False, **kwargs)
    return json.dumps(obj, default=_json_default, allow_nan=True, **kwargs)


def write_json(path, obj):
    """Write ``obj`` as strict, indented JSON to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    obj : object
        What :func:`dumps_json` accepts.
    """
    return atomic_write(path, lambda f: f.write(dumps_json(obj, strict=True, indent=1) + "\n"),
                        mode="w")


def write_archive(path, format, version, meta, arrays):
    """Write an archive: ``arrays`` plus ``meta`` (a dict) with ``format`` and ``version``.

    Returns ``path`` as a str.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file to create or replace (atomically).
    format : str
        The archive's kind, checked by :func:`read_archive`.
    version : int
        The format's version, checked by :func:`read_archive`.
    meta : dict
        JSON-ready metadata, stored as one JSON string.
    arrays : dict of str to ndarray
        The arrays, by name.
    """
    header = {"format": format, "version": version, **meta}
    return atomic_savez(path, {"meta": np.array(dumps_json(header)), **arrays})


def read_archive(path, format, version, required, what):
    """Read an archive written by :func:`write_archive` (``allow_pickle=False``).

    Parameters
    ----------
    path : str or os.PathLike
    format : str
        The ``format`` the file must declare.
    version : int
        The newest version of that format this code reads.
    required : iterable of str
        Arrays the file must hold besides ``meta``.
    what : str
        What the file is, for messages (e.g. ``"checkpoint"``).

    Returns
    -------
    meta : dict
        The JSON part.
    arrays : dict
        Every array of the file but ``meta``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a readable archive of this format (corrupt, truncated,
        another kind of file, or written by a newer version); the message
        names the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist")
    required = set(required) | {"meta"}
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if not required <= files:
                raise ValueError(f"arrays {sorted(files)}, expected {sorted(required)}")
            meta = json.loads(str(npz["meta"][()]))
            arrays = {name: npz[name] for name in files - {"meta"}}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"cannot read {what} {path!r}: corrupt or not a {what} "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != format:
        raise ValueError(f"{path!r} is not a {what}")
    found = meta.get("version", 0)
    if not isinstance(found, int) or found > version:
        raise ValueError(f"{what} {path!r} was written by a newer newtoncnn (format "
                         f"{found!r}); upgrade newtoncnn to read it")
    return meta, arrays
