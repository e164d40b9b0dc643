"""One hash-keyed JSON cache, used by synth (module results, design structures), sim
(the Verilator build stamp) and dse (sweep points).

A :class:`Cache` is a directory of entries, one JSON file per key, each written
atomically with :func:`nmmx.files.atomic_write`.  A file holds an envelope::

    {"cache": "<name>", "schema": <version>, "key": "<key>", "data": {...}}

and ``data`` must match the cache's field table (:func:`check_fields`).  Every promise
a cache makes is about faults, not speed:

* an entry that cannot be read as this cache's entry (not JSON, truncated, a list,
  ``null``, another cache's or schema's envelope, a missing or mistyped field, a key
  other than the file's) is never used: :meth:`Cache.get` prints one warning line and
  returns ``None``, so the caller computes the result again and overwrites the entry;
* a directory that cannot be written costs the cache, never the result:
  :meth:`Cache.put` prints one warning line (once per directory and process) and
  returns ``False``, and the caller carries on with the result it has.

The schema version is part of every key a cache derives (:meth:`Cache.digest`), so a
changed entry format never even looks at old files.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from nmmx.files import atomic_write

__all__ = ["Cache", "Number", "ListOf", "DictOf", "TupleOf", "Optional", "check_fields",
           "cache_root"]


# -- field tables -----------------------------------------------------------------------

class Number:
    """Field type: a JSON number (``int`` or ``float``, NaN allowed), never a ``bool``."""


class ListOf:
    """Field type: a list whose every item is ``item``."""

    def __init__(self, item):
        self.item = item


class DictOf:
    """Field type: an object with string keys whose every value is ``value``."""

    def __init__(self, value):
        self.value = value


class TupleOf:
    """Field type: a list of exactly ``len(items)`` values, the i-th of type ``items[i]``."""

    def __init__(self, *items):
        self.items = items


class Optional:
    """Field type in a table: the field may be missing; if present it is ``kind``."""

    def __init__(self, kind):
        self.kind = kind


def _name(kind):
    if isinstance(kind, dict):
        return "an object"
    if isinstance(kind, (ListOf, TupleOf)):
        return "a list"
    if isinstance(kind, DictOf):
        return "an object"
    if kind is Number:
        return "a number"
    if kind is type(None):
        return "null"
    if isinstance(kind, tuple):
        return " or ".join(_name(k) for k in kind)
    return {int: "an integer", str: "a string", bool: "a boolean", float: "a number",
            list: "a list", dict: "an object"}.get(kind, kind.__name__)


def _problem(value, kind, where):
    """Why ``value`` is not ``kind`` (a sentence fragment naming ``where``), or None."""
    if isinstance(kind, tuple):
        if any(_problem(value, k, where) is None for k in kind):
            return None
        return f"field {where!r} is not {_name(kind)}"
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            return f"field {where!r} is not an object"
        return check_fields(value, kind, where)
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            return f"field {where!r} is not a list"
        for i, item in enumerate(value):
            p = _problem(item, kind.item, f"{where}[{i}]")
            if p:
                return p
        return None
    if isinstance(kind, TupleOf):
        if not isinstance(value, list) or len(value) != len(kind.items):
            return f"field {where!r} is not a list of {len(kind.items)}"
        for i, (item, k) in enumerate(zip(value, kind.items)):
            p = _problem(item, k, f"{where}[{i}]")
            if p:
                return p
        return None
    if isinstance(kind, DictOf):
        if not isinstance(value, dict):
            return f"field {where!r} is not an object"
        for k, item in value.items():
            p = _problem(item, kind.value, f"{where}.{k}")
            if p:
                return p
        return None
    if kind is Number or kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is type(None):
        ok = value is None
    else:
        ok = isinstance(value, kind)
    return None if ok else f"field {where!r} is not {_name(kind)}"


def check_fields(data, table, where=""):
    """Check the object ``data`` against the field table ``table``.

    Parameters
    ----------
    data : dict
    table : dict of str to field type
        Field name -> ``int``, ``str``, ``bool``, ``list``, ``dict``, :class:`Number`
        (``float`` means the same), ``type(None)``, a tuple of alternatives, a nested
        table (dict), :class:`ListOf`, :class:`DictOf`, :class:`TupleOf`, or
        :class:`Optional` around any of them.  Fields not in the table are allowed.
    where : str
        Path of ``data`` inside the entry (empty at the top).

    Returns
    -------
    str or None
        The first problem found (``"field 'ge' is missing"``), or ``None``.
    """
    for field, kind in table.items():
        optional = isinstance(kind, Optional)
        kind = kind.kind if optional else kind
        label = f"{where}.{field}" if where else field
        if field not in data:
            if optional:
                continue
            return f"field {label!r} is missing"
        p = _problem(data[field], kind, label)
        if p:
            return p
    return None


# -- the cache --------------------------------------------------------------------------

def cache_root():
    """Root of nmmx's shared caches: ``$NMMX_CACHE_DIR``, else ``~/.cache/nmmx``."""
    env = os.environ.get("NMMX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "nmmx"


#: Directories whose unwritability was already reported (one warning per process).
_WARNED_UNWRITABLE = set()


def _json_kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _warn(message, stream=None):
    print(f"warning: {message}", file=sys.stderr if stream is None else stream, flush=True)


class Cache:
    """A directory of hash-keyed JSON entries with a schema version and a field table.

    Parameters
    ----------
    root : path
        Directory of the entries (created on the first :meth:`put`).
    name : str
        What the entries are (``"synth module"``); stored in every envelope and named
        by the warnings.
    version : int
        Schema version of the entries: bump it whenever the meaning or layout of
        ``data`` changes.  Part of :meth:`digest` and checked on every read.
    fields : dict
        Field table of ``data`` (see :func:`check_fields`).
    layout : callable, optional
        ``layout(key) -> relative path`` of an entry (default ``"<key>.json"``).
    check : callable, optional
        ``check(data) -> str or None``: a consistency check beyond the field types;
        a returned sentence fragment makes the entry bad.

    Members
    -------
    root : pathlib.Path
    name : str
    version : int
    fields : dict
    """

    def __init__(self, root, *, name, version, fields, layout=None, check=None):
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"A cache schema version must be a positive integer, not "
                             f"{version!r}")
        self.root = Path(root)
        self.name = name
        self.version = version
        self.fields = fields
        self._layout = layout or (lambda key: f"{key}.json")
        self._check = check

    @property
    def tag(self):
        """``"<name> v<version>"``: what every key of this cache is derived from."""
        return f"{self.name} v{self.version}"

    def digest(self, text, length=24):
        """A key: the first ``length`` hex digits of SHA-256 over :attr:`tag` and ``text``."""
        return hashlib.sha256(f"{self.tag}\0{text}".encode()).hexdigest()[:length]

    def path(self, key):
        """The file of the entry ``key``."""
        return self.root / self._layout(key)

    def problem(self, envelope, key):
        """Why ``envelope`` (a parsed file) is not this cache's entry ``key``, or None."""
        if not isinstance(envelope, dict):
            return f"it holds {_json_kind(envelope)}, not an object"
        for field, want in (("cache", self.name), ("schema", self.version), ("key", key)):
            if envelope.get(field) != want:
                return f"its {field} is {envelope.get(field)!r}, not {want!r}"
        data = envelope.get("data")
        if not isinstance(data, dict):
            return "its data is not an object"
        p = check_fields(data, self.fields)
        if p is None and self._check is not None:
            p = self._check(data)
        return p

    def get(self, key, *, stream=None):
        """The data of entry ``key``, or ``None`` when it is missing or bad.

        A bad entry (anything but this cache's valid entry ``key``) prints one warning
        line on ``stream`` (default stderr) and is left for :meth:`put` to overwrite.
        """
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None         # no such entry (or no such cache): an ordinary miss
        except (OSError, UnicodeDecodeError) as e:
            _warn(f"ignoring the {self.name} cache entry {str(path)!r}: it cannot be "
                  f"read ({getattr(e, 'strerror', None) or e}); computing it again", stream)
            return None
        try:
            envelope = json.loads(text)
        except ValueError:
            reason = "it is empty" if not text.strip() else "it is not valid JSON"
        else:
            reason = self.problem(envelope, key)
        if reason is not None:
            _warn(f"ignoring the bad {self.name} cache entry {str(path)!r}: {reason}; "
                  f"computing it again", stream)
            return None
        return envelope["data"]

    def put(self, key, data, *, stream=None):
        """Write entry ``key`` atomically; ``True`` on success.

        If the directory cannot be written, one warning line per directory and process
        goes to ``stream`` (default stderr) and ``False`` is returned; nothing raises.
        ``data`` that does not match the field table is not written either (a warning,
        ``False``): it would never be read back.
        """
        problem = check_fields(data, self.fields)
        if problem is not None:     # a bug, but the caller's result must survive it
            _warn(f"not caching the {self.name} entry {key}: {problem}", stream)
            return False
        text = json.dumps({"cache": self.name, "schema": self.version, "key": key,
                           "data": data}, indent=1, allow_nan=True)
        path = self.path(key)
        try:
            atomic_write(path, text + "\n")
        except OSError as e:
            if self.root not in _WARNED_UNWRITABLE:
                _WARNED_UNWRITABLE.add(self.root)
                _warn(f"the {self.name} cache {str(self.root)!r} cannot be written "
                      f"({e.strerror or e}); continuing without caching", stream)
            return False
        return True
