"""Operands for the numerical-error study: real weights from a file, or synthetic ones,
and synthetic activations (Gaussian and heavy-tailed with outlier channels).

All operands are float32, shaped for ``C[M x N] = A[M x K] W[K x N]``.  Weight tensors
read from a file are taken as ``(out_features, in_features)`` -- the layout of a
PyTorch ``nn.Linear`` weight -- so ``K = in_features`` (the axis that the sparsity groups
and MX blocks run along) and they are transposed on load.
"""

import fnmatch
import hashlib
from pathlib import Path

import numpy as np

__all__ = ["ACTIVATION_KINDS", "load_weights", "file_digest", "synthetic_weights",
           "synthetic_activations", "crop_weight"]

#: Synthetic activation distributions, in the order the report lists them.
ACTIVATION_KINDS = ("gaussian", "student_t")

#: Degrees of freedom of the heavy-tailed activations (finite variance, heavy tails).
STUDENT_T_DOF = 3
#: Fraction of K channels that carry outliers, and their gain.  LLM activations show a
#: few feature channels that are one to two orders of magnitude larger than the rest;
#: these channels stress the shared MX scale of the blocks they fall into.
OUTLIER_FRACTION = 1 / 64
OUTLIER_GAIN = 20.0


def file_digest(path):
    """SHA-256 of a file's bytes (part of the cache key of every point that reads it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths):
    """SHA-256 over several files' names and digests, in order (a liberty set)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0" + file_digest(p).encode())
    return h.hexdigest()


#: Suffixes of the weights files :func:`load_weights` reads, and what each holds.
WEIGHT_SUFFIXES = {".npy": "a .npy array", ".npz": "a .npz archive of arrays",
                   ".safetensors": "a safetensors file"}


def _read_tensors(path):
    """Every tensor in ``path`` by name.  Never unpickles: an object array is refused
    (``allow_pickle=False``), so a weights file cannot run code."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if not isinstance(arr, np.ndarray):
            raise ValueError("not a .npy array")
        return {path.stem: arr}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("not a .npz archive")
            return {name: z[name] for name in z.files}
    from safetensors.numpy import load_file
    return load_file(str(path))


def load_weights(path, pattern="*"):
    """Read the 2-D tensors whose names match ``pattern`` from a weights file.

    Parameters
    ----------
    path : str or Path
        ``.npy`` (one tensor, named after the file stem), ``.npz`` or ``.safetensors``.
    pattern : str
        Shell-style glob (``fnmatch``) on tensor names, e.g. ``"*q_proj*"``.

    Returns
    -------
    dict of str to ndarray
        Matching 2-D tensors as float32 ``K x N`` arrays (transposed from
        ``(out_features, in_features)``), in name order.

    Raises
    ------
    ValueError
        The file is missing, has an unknown suffix, is empty, damaged or holds Python
        objects; a matching tensor is empty or has non-finite values; or no 2-D tensor
        matches ``pattern``.  The message names the file and never quotes the reader.
    """
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise ValueError(f"Weights file {shown!r} does not exist")
    if not path.is_file():
        raise ValueError(f"Weights file {shown!r} is not a regular file")
    kind = WEIGHT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"Weights file {shown!r} must end in "
                         f"{', '.join(WEIGHT_SUFFIXES)}, not {path.suffix or 'no suffix'!r}")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ValueError(f"Weights file {shown!r} cannot be read ({e.strerror})") from None
    if size == 0:
        raise ValueError(f"Weights file {shown!r} is empty")
    try:
        tensors = _read_tensors(path)
    except PermissionError:
        raise ValueError(f"Weights file {shown!r} cannot be read (permission "
                         f"denied)") from None
    except Exception:  # numpy/safetensors raise many kinds for a bad file, some unsafe
        raise ValueError(f"Weights file {shown!r} is not {kind} of numbers (damaged, "
                         f"truncated or holding Python objects)") from None
    out = {}
    for name in sorted(tensors):
        t = np.asarray(tensors[name])
        if t.ndim != 2 or not fnmatch.fnmatchcase(name, pattern):
            continue
        # ml_dtypes types (bfloat16, float8_*) are not numpy floating subtypes.
        if not (np.issubdtype(t.dtype, np.floating) or "float" in str(t.dtype)):
            continue
        if t.size == 0:
            raise ValueError(f"Weight tensor {name!r} in {shown!r} is empty (shape "
                             f"{t.shape[0]} x {t.shape[1]})")
        w = np.asarray(t, dtype=np.float32).T
        if not np.all(np.isfinite(w)):
            raise ValueError(f"Weight tensor {name!r} in {shown!r} has non-finite values")
        out[name] = np.ascontiguousarray(w)
    if not out:
        raise ValueError(f"No 2-D floating-point tensor in {str(path)!r} matches the "
                         f"pattern {pattern!r}")
    return out


def crop_weight(w, k, n, block_size):
    """Top-left ``k x n`` corner of a ``K x N`` weight, with K cut to whole MX blocks.

    Keeping whole blocks means the crop never introduces zero padding that would make
    the quantization error look smaller than on the full tensor.
    """
    kk = min(w.shape[0], k)
    if kk >= block_size:
        kk -= kk % block_size
    return np.ascontiguousarray(w[:kk, :min(w.shape[1], n)])


def synthetic_weights(k, n, seed):
    """Gaussian ``k x n`` weights with the ``1/sqrt(k)`` scale of a trained layer's init."""
    rng = np.random.default_rng([seed, 1])
    return (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)


def synthetic_activations(m, k, kind, seed):
    """Synthetic ``m x k`` activations.

    Parameters
    ----------
    m, k : int
        Shape.
    kind : str
        ``"gaussian"`` (standard normal) or ``"student_t"`` (Student-t with
        :data:`STUDENT_T_DOF` degrees of freedom, with ``ceil(k * OUTLIER_FRACTION)``
        channels along K scaled by :data:`OUTLIER_GAIN`).
    seed : int
        Random seed (the same seed gives the same activations in every process).

    Raises
    ------
    ValueError
        ``kind`` is not one of :data:`ACTIVATION_KINDS`.
    """
    if kind not in ACTIVATION_KINDS:
        raise ValueError(f"Activation kind must be one of {', '.join(ACTIVATION_KINDS)}, "
                         f"not {kind!r}")
    rng = np.random.default_rng([seed, 2, ACTIVATION_KINDS.index(kind)])
    if kind == "gaussian":
        return rng.standard_normal((m, k)).astype(np.float32)
    a = rng.standard_t(STUDENT_T_DOF, size=(m, k))
    n_out = max(1, int(np.ceil(k * OUTLIER_FRACTION)))
    channels = rng.choice(k, size=n_out, replace=False)
    a[:, channels] *= OUTLIER_GAIN
    return a.astype(np.float32)
