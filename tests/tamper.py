"""Tampering with newtoncnn's archives (saved models, checkpoints) member by member.

An archive is a zip of ``.npy`` members; these helpers read the members as
bytes, change them (the JSON of ``meta``, an array, a ``.npy`` header) and
write a new zip, as a hostile user editing a file would.
"""
import io
import json
import zipfile

import numpy as np


def members(path):
    """{name without .npy: raw .npy bytes} of an archive."""
    with zipfile.ZipFile(path) as zf:
        return {info.filename[:-4]: zf.read(info) for info in zf.infolist()}


def write_members(path, parts):
    """Write ``parts`` ({name: .npy bytes}) as a stored zip at ``path``; returns ``path``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in parts.items():
            zf.writestr(name + ".npy", data)
    return path


def npy(arr):
    """The .npy bytes of ``arr`` (an object array as a header declaring pickled data)."""
    arr = np.asarray(arr)
    if arr.dtype.hasobject:
        return npy_header(arr.shape, "|O", b"\x80\x04N." * arr.size)
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_header(shape, descr="<f8", payload=b""):
    """A .npy header declaring ``shape`` of ``descr``, followed by ``payload``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + payload


def array(data):
    """The array in .npy bytes."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def meta_of(parts):
    """The JSON dict of the ``meta`` member."""
    return json.loads(str(array(parts["meta"])[()]))


def with_meta(parts, meta):
    """``parts`` with ``meta`` (a dict, or already JSON text) as the JSON member."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return {**parts, "meta": npy(np.array(text))}


def edit(src, dst, change_meta=None, arrays=None, drop=()):
    """Copy archive ``src`` to ``dst`` with ``change_meta(meta)`` applied to the JSON
    (in place), arrays replaced (``{name: array or raw bytes}``) and members dropped."""
    parts = members(src)
    if change_meta is not None:
        meta = meta_of(parts)
        change_meta(meta)
        parts = with_meta(parts, meta)
    for name, value in (arrays or {}).items():
        parts[name] = value if isinstance(value, bytes) else npy(value)
    for name in drop:
        parts.pop(name, None)
    return write_members(dst, parts)


def nested(depth):
    """JSON text of a list nested ``depth`` deep."""
    return "[" * depth + "]" * depth
