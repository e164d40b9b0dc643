"""Command-line flags generated once from :class:`golden.Config`.

Every ``python -m`` entry point (gen, sim, synth, dse) calls :func:`add_config_flags`
and :func:`configs_from_args`, so a flag means the same thing everywhere.  With
``multi=True`` (the design-space sweep) each flag takes a comma-separated list and the
sweep is their cross product.
"""

import argparse
import itertools
import os
import sys
from dataclasses import fields

from golden.config import Config, parse_sparsity
from golden.formats import FORMATS

__all__ = ["add_config_flags", "add_bus_flag", "BUSES", "configs_from_args", "config_from_args",
           "refuse_modes", "UsageError",
           "run_cli", "cli_main", "Interrupted", "INTERRUPTED", "list_formats_text",
           "ArgumentParser", "parse_shape", "shape_label", "whole_number", "parse_seed"]

_DEFAULT = Config()

#: Help text for each Config field (the flag name is the field name with dashes).
_HELP = {
    "rows": "systolic array rows R (1..64)",
    "cols": "systolic array columns C (1..64)",
    "a_format": "activation element format",
    "w_format": "weight element format",
    "sparsity": "weight N:M structured sparsity along K (dense is N:N)",
    "block_size": "MX block length along K (multiple of M)",
    "dataflow": "dataflow of the array: os (output stationary) or ws (weight stationary)",
    "m_max": "largest GEMM M the engine buffers hold",
    "k_max": "largest GEMM K the engine buffers hold",
    "n_max": "largest GEMM N the engine buffers hold",
    "tile_skip": "skip weight tiles whose stored values are all zero (output stationary): "
                 "on or off",
    "modes": "run-time modes of one unified engine, comma-separated, each FORMAT@N:M or "
             "A_FORMAT/W_FORMAT@N:M, p after M for pair sparsity (e.g. "
             "mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p); they set the formats and "
             "sparsity",
}

#: The words of an on/off flag (a bool field of Config).
_SWITCH = {"on": True, "off": False}


def parse_shape(text):
    """Parse a GEMM shape ``"64x512x64"`` into ``(64, 512, 64)``; every command's
    ``--gemm`` goes through here.  Raises ``ValueError`` naming the text."""
    if not isinstance(text, str):
        raise TypeError(f"A GEMM shape must be written MxKxN, not {text!r}")
    parts = text.strip().lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"A GEMM shape must be written MxKxN with positive whole "
                         f"numbers, not {text!r}")
    return tuple(int(p) for p in parts)


def shape_label(shape):
    """``(64, 512, 64)`` -> ``"64x512x64"``."""
    return "x".join(str(v) for v in shape)


class UsageError(Exception):
    """A command-line value that the user must fix; CLIs turn it into exit code 2."""


def whole_number(value, flag, lo=None, hi=None):
    """``value`` (flag text, or an int from a sweep file) as an int in ``lo..hi``.

    Raises :class:`UsageError` naming ``flag`` and the value.
    """
    if isinstance(value, bool):
        raise UsageError(f"{flag} must be a whole number, not {value!r}")
    if not isinstance(value, int):
        try:
            value = int(str(value).strip(), 10)
        except ValueError:
            raise UsageError(f"{flag} must be a whole number, not {value!r}") from None
    if lo is not None and value < lo:
        raise UsageError(f"{flag} must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise UsageError(f"{flag} must be at most {hi}, not {value}")
    return value


def parse_seed(value, flag="--seed"):
    """A random seed: a whole number >= 0 (what ``numpy.random.default_rng`` accepts).
    Every command's ``--seed`` goes through here."""
    return whole_number(value, flag, lo=0)


def _parse_int(flag):
    def parse(text):
        try:
            return int(text, 10)
        except ValueError:
            raise UsageError(f"{flag} must be a whole number, not {text!r}") from None
    return parse


def _parse_switch(flag):
    def parse(text):
        word = text.strip().lower()
        if word not in _SWITCH:
            raise UsageError(f"{flag} must be on or off, not {text!r}")
        return _SWITCH[word]
    return parse


def _shown(value):
    """A default as its flag text."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return f"{value[0]}:{value[1]}"
    return value


def _parser_for(f):
    flag = "--" + f.name.replace("_", "-")
    if f.name == "sparsity":
        return lambda t: parse_sparsity(t.strip())
    if isinstance(getattr(_DEFAULT, f.name), bool):
        return _parse_switch(flag)
    if isinstance(getattr(_DEFAULT, f.name), int):
        return _parse_int(flag)
    return lambda t: t.strip()


#: Config fields without a flag in sweeps (``multi=True``): a list of mode lists would
#: need a second separator; their value in the parsed namespace is None.
_NO_MULTI_FLAG = ("modes",)


def add_config_flags(parser, *, multi=False):
    """Add one flag per :class:`Config` field (plus ``--format`` and ``--list-formats``)."""
    group = parser.add_argument_group("engine configuration")
    if multi:
        parser.set_defaults(**{name: None for name in _NO_MULTI_FLAG})
    for f in fields(Config):
        if multi and f.name in _NO_MULTI_FLAG:
            continue
        shown = ("none: a fixed engine" if f.name == "modes"
                 else _shown(getattr(_DEFAULT, f.name)))
        help_ = _HELP[f.name] + (" (comma-separated list)" if multi else "")
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                           metavar="LIST" if multi else f.name.upper().replace("_", "-"),
                           help=f"{help_} [default: {shown}]")
    group.add_argument("--format", dest="format", default=None,
                       metavar="LIST" if multi else "FORMAT",
                       help="element format of both operands (overrides neither "
                            "--a-format nor --w-format when those are given)")
    group.add_argument("--list-formats", action=_ListFormats,
                       help="list the element formats and exit")
    return group


#: Host interfaces of a generated top: ``none`` (the engine's own ports) or ``axi``
#: (:class:`hw.soc.SocEngine`: AXI4-Lite registers, AXI4-Stream data).
BUSES = ("none", "axi")


def add_bus_flag(parser, extra=""):
    """Add ``--bus {none,axi}`` (the generated top's host interface)."""
    parser.add_argument("--bus", choices=BUSES, default="none",
                        help="host interface: none (the engine's own ports) or axi "
                             f"(AXI4-Lite registers, AXI4-Stream data){extra} "
                             "[default: none]")


class _ListFormats(argparse.Action):
    """``--list-formats``: print the format table and exit 0, in every entry point."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(list_formats_text())
        parser.exit(0)


def list_formats_text():
    rows = ["name         bits  kind  max          emax_elem  scaled"]
    for f in FORMATS.values():
        rows.append(f"{f.name:<12} {f.bits:>4}  {f.kind:<4}  {f.max_value:<12g} "
                    f"{f.emax_elem:>9}  {'yes' if f.scaled else 'no'}")
    return "\n".join(rows)


def _values(args, name, multi):
    text = getattr(args, name)
    if text is None:
        return None
    parts = text.split(",") if multi else [text]
    if any(not p.strip() for p in parts):
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} has an empty item in {text!r}")
    return parts


def configs_from_args(args, *, multi=False):
    """Build the list of configs the parsed flags describe (one unless ``multi``).

    ``--format F`` sets both operands; ``--a-format``/``--w-format`` override it per
    operand.  In a sweep, ``--format`` lists pair each format with itself, while
    ``--a-format``/``--w-format`` lists form the cross product of mixed pairs.

    Raises :class:`UsageError` with a sentence naming the bad value.
    """
    choices = {}
    for f in fields(Config):
        parts = _values(args, f.name, multi)
        if parts is None or f.name in ("a_format", "w_format"):
            continue
        parse = _parser_for(f)
        try:
            choices[f.name] = [parse(p) for p in parts]
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    both = _values(args, "format", multi)
    a_list = _values(args, "a_format", multi)
    w_list = _values(args, "w_format", multi)
    strip = lambda xs: None if xs is None else [x.strip() for x in xs]
    both, a_list, w_list = strip(both), strip(a_list), strip(w_list)
    if a_list is None and w_list is None:
        pairs = [(f, f) for f in both] if both else [(None, None)]
    else:
        pairs = list(itertools.product(a_list or both or [None], w_list or both or [None]))
    names = list(choices)
    out = []
    for a_fmt, w_fmt in pairs:
        for combo in itertools.product(*(choices[n] for n in names)):
            kw = dict(zip(names, combo))
            if a_fmt is not None:
                kw["a_format"] = a_fmt
            if w_fmt is not None:
                kw["w_format"] = w_fmt
            try:
                cfg = Config(**kw)
            except (ValueError, TypeError) as e:
                raise UsageError(str(e)) from None
            if cfg not in out:
                out.append(cfg)
    return out


def config_from_args(args):
    return configs_from_args(args, multi=False)[0]


def refuse_modes(config, prog):
    """Raise :class:`UsageError` when ``config`` has several modes and the command
    ``prog`` runs fixed engines only."""
    if config.unified:
        raise UsageError(f"{prog} runs fixed engines only in this release, not one with "
                         f"{len(config.modes)} modes")
    return config


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with one sentence saying what was done and how to resume; raise it from a
    ``main`` that knows more than :func:`run_cli`'s default message."""


#: What :func:`run_cli` says on Ctrl-C when ``main`` does not say more.
INTERRUPTED = "nothing was written; run the same command again to start over"


def cli_main(main, argv=None, *, interrupted=INTERRUPTED):
    """The entry point of every ``python -m``: :func:`run_cli`, and a reader that closes
    the pipe early (``python -m gen --list-formats | head -1``) ends the command quietly
    instead of with a ``BrokenPipeError`` traceback (the recipe of Python's ``signal``
    documentation: point stdout at devnull so the exit-time flush cannot fail again)."""
    try:
        code = run_cli(main, argv, interrupted=interrupted)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def run_cli(main, argv=None, *, interrupted=INTERRUPTED):
    """Run ``main(argv)`` and map every way it can end to an exit code and one line.

    * a :class:`UsageError` or :class:`nmmx.files.OutputError` (a bad argument or output
      path, found before any work): ``error: SENTENCE`` on stderr, exit code 2;
    * an ``OSError`` during the work (a full disk, a file that vanished): ``error:
      SENTENCE`` (:func:`nmmx.files.os_error_text`), exit code 1;
    * Ctrl-C (``KeyboardInterrupt``): ``interrupted: SENTENCE`` on stderr, exit code 130;
      the sentence is the :class:`Interrupted` message, or ``interrupted``;
    * a closed stdout (``BrokenPipeError``) propagates to :func:`cli_main`.

    No traceback reaches the user in any of these cases.
    """
    from nmmx.files import OutputError, os_error_text
    try:
        code = main(argv)
    except SystemExit as e:          # --help, --list-formats
        return e.code or 0
    except (UsageError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        text = str(e) if isinstance(e, Interrupted) and str(e) else interrupted
        print(f"interrupted: {text}", file=sys.stderr)
        # The abandoned work's half-built objects warn when collected at exit (Amaranth's
        # UnusedElaboratable); after Ctrl-C that is noise, so the line above stays the one.
        import warnings
        warnings.simplefilter("ignore")
        return 130
    except BrokenPipeError:
        raise
    except OSError as e:
        print(f"error: {os_error_text(e)}", file=sys.stderr)
        return 1
    return 0 if code is None else code


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors raise :class:`UsageError` (exit 2, one sentence).

    Every command's help has the same shape: ``description`` is one capitalized
    sentence, and ``examples`` (command lines, each optionally followed by an indented
    explanation) become an ``Examples:`` epilog, laid out as written.
    """

    def __init__(self, *args, description=None, examples=(), **kw):
        if description is not None and not (description[:1].isupper()
                                            and description.endswith(".")
                                            and "\n" not in description):
            raise ValueError(f"A command description is one capitalized sentence, not "
                             f"{description!r}")
        if examples:
            kw["epilog"] = "Examples:\n" + "\n".join(f"  {line}" for line in examples)
            kw["formatter_class"] = argparse.RawDescriptionHelpFormatter
        super().__init__(*args, description=description, **kw)

    def error(self, message):
        raise UsageError(message)
