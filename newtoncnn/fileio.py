"""Files newtoncnn writes: atomic replacement, JSON, and its versioned ``.npz`` archives.

An archive is an ``.npz`` file of arrays plus one array ``meta`` holding a
JSON string with at least ``format`` (what the file is) and ``version`` (of
that format); no pickle inside. Checkpoints (:mod:`newtoncnn.checkpoint`) and
saved models (:meth:`newtoncnn.estimator.CNNClassifier.save`) are archives.
Every file is written atomically: a temporary file in the same directory,
flushed and fsync'ed, then renamed over the target, so that a crash leaves
either the previous file or the new one, never a partial file. A symbolic
link is written through (its target is replaced, the link stays), a file
saved over keeps its permission bits, and anything that is not a regular
file (a directory, a FIFO, a device, a socket) is refused, never replaced:
:func:`check_output_path` says so before a long computation starts.

Reading is as careful: :func:`read_archive` checks the whole file (every
member, its declared array size against the file's own size, the JSON part)
before it loads anything, and every failure is one ``ValueError`` naming the
file.
"""
import contextlib
import json
import math
import os
import stat
import tempfile
import zipfile

import numpy as np

__all__ = ["atomic_write", "atomic_savez", "dumps_json", "write_json", "write_archive",
           "read_archive", "check_output_path", "check_distinct_outputs", "OutputPathError"]


class OutputPathError(ValueError):
    """An output path that cannot be written safely (a directory, a special file, a
    missing or unwritable directory); the message names the path."""


def _kind(mode):
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _target(path, what):
    """(the real file ``path`` names — through symbolic links —, its stat or None).

    Raises OutputPathError when that file exists and is not a regular file."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, None
    except OSError as exc:
        raise OutputPathError(f"{what} {path!r}: cannot inspect it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{what} {path!r} is {_kind(st.st_mode)}, not a regular file: "
                              "refusing to replace it (give a file name)")
    return real, st


def check_output_path(path, what="output"):
    """Check, before any work, that ``path`` can be written by :func:`atomic_write`.

    ``path`` must name a regular file (or nothing yet; a symbolic link counts
    as its target) in an existing, writable directory: the check creates and
    removes a temporary file there. Returns the real path (symbolic links
    resolved), which :func:`check_distinct_outputs` compares.

    Parameters
    ----------
    path : str or os.PathLike
        The file to be written.
    what : str, default "output"
        What the file is (e.g. ``"--out"``), for messages.

    Raises
    ------
    OutputPathError
        A ``ValueError`` naming ``what``, ``path`` and the problem.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a file path (str or os.PathLike), "
                        f"got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise OutputPathError(f"{what} must not be an empty path")
    if "\0" in path:
        raise OutputPathError(f"{what} {path!r} contains a NUL character")
    real, st = _target(path, what)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise OutputPathError(f"{what} {path!r}: directory {directory!r} does not exist")
    if st is not None and not os.access(real, os.W_OK):
        raise OutputPathError(f"{what} {path!r} exists and is read-only")
    try:
        fd, probe = tempfile.mkstemp(prefix=".newtoncnn-probe.", dir=directory)
    except OSError as exc:
        raise OutputPathError(f"{what} {path!r}: cannot create files in {directory!r} "
                              f"({exc.strerror})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return real


def check_distinct_outputs(paths):
    """Raise OutputPathError if two of ``paths`` name the same file.

    Parameters
    ----------
    paths : dict of str to (str or os.PathLike or None)
        The output paths by what they are (e.g. ``{"--out": ..., "--history": ...}``);
        None entries are ignored. Paths are compared after resolving symbolic
        links, and existing files also by identity (hard links).
    """
    seen = []
    for what, path in paths.items():
        if path is None:
            continue
        real = os.path.realpath(os.fspath(path))
        for other, other_real in seen:
            same = real == other_real
            if not same and os.path.exists(real) and os.path.exists(other_real):
                with contextlib.suppress(OSError):
                    same = os.path.samefile(real, other_real)
            if same:
                raise OutputPathError(f"{what} and {other} name the same file "
                                      f"{os.fspath(path)!r}: one would overwrite the other")
        seen.append((what, real))


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
    file is removed and ``path`` is left as it was. A symbolic link is
    written through to its target; a file replaced keeps its permission
    bits (a new one gets ``0o666`` minus the umask); a target that is not a
    regular file raises :class:`OutputPathError` and is left alone.
    Returns ``path`` as a str.

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
    real, st = _target(path, "output file")
    directory = os.path.dirname(real)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes it private: the replaced file's bits, or the umask's
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        _target(path, "output file")  # still not turned into a special file meanwhile
        os.replace(tmp, real)
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


# A deflated member can expand at most about 1032 times (zlib's limit); anything above is
# a lie of the zip directory.
_MAX_DEFLATE_RATIO = 1032
_ARRAY_KINDS = "biufcU"


def _check_members(zf, file_size):
    """Check every member of an ``.npz`` before any is loaded: a ``.npy`` of plain
    numbers or text whose declared shape and dtype account exactly for its bytes,
    and members that together fit in the file. Returns the member names (no ``.npy``)."""
    names, total = [], 0
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in names:
            raise ValueError(f"unexpected member {info.filename!r}")
        if info.compress_type == zipfile.ZIP_STORED:
            ok = info.file_size == info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            ok = info.file_size <= _MAX_DEFLATE_RATIO * info.compress_size + 64
        else:
            ok = False
        total += info.compress_size
        if not ok or total > file_size:
            raise ValueError(f"member {info.filename!r} declares {info.file_size} bytes, "
                             f"more than the file can hold ({file_size} bytes)")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"member {info.filename!r} has .npy version {version}")
            header = f.tell()
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"member {info.filename!r} has dtype {dtype}, not plain numbers "
                             "or text")
        declared = math.prod(shape) * dtype.itemsize
        if header + declared != info.file_size:
            raise ValueError(f"member {info.filename!r} declares shape {shape} of {dtype} "
                             f"({declared} bytes) but holds {info.file_size - header} bytes")
        names.append(info.filename[:-4])
    return names


def read_archive(path, format, version, required, what):
    """Read an archive written by :func:`write_archive` (``allow_pickle=False``).

    The whole file is checked first: a zip of ``.npy`` members of plain
    numbers or text, each of exactly the size its header declares and all
    within the file's own size (so that a tampered size cannot make it
    allocate more than the file holds), then the JSON part.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
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
        names the file and what is wrong.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist")
    required = set(required) | {"meta"}
    try:
        if not os.path.isfile(path):
            raise ValueError("not a regular file")
        with zipfile.ZipFile(path) as zf:
            files = set(_check_members(zf, os.path.getsize(path)))
        if not required <= files:
            raise ValueError(f"arrays {sorted(files)}, expected {sorted(required)}")
        with np.load(path, allow_pickle=False) as npz:
            text = npz["meta"]
            if text.shape != () or text.dtype.kind != "U":
                raise ValueError(f"meta is a {text.dtype} array of shape {text.shape}, "
                                 "expected one string")
            meta = json.loads(str(text[()]))
            arrays = {name: npz[name] for name in files - {"meta"}}
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (Exception, RecursionError) as exc:  # zip, zlib, npy, JSON: all "corrupt"
        detail = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"cannot read {what} {path!r}: corrupt or not a {what} "
                         f"({type(exc).__name__}: {detail})") from None
    if not isinstance(meta, dict) or meta.get("format") != format:
        raise ValueError(f"{path!r} is not a {what}")
    found = meta.get("version", 0)
    if not isinstance(found, int) or isinstance(found, bool) or found > version:
        raise ValueError(f"{what} {path!r} was written by a newer newtoncnn (format "
                         f"{found!r}); upgrade newtoncnn to read it")
    return meta, arrays
