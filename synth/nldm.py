"""Real NLDM cell libraries: reading, locating, merging, and the figures nmmx derives from them.

A library is one liberty file or a set split by cell family (ASAP7 ships AO, OA, SIMPLE,
INVBUF and SEQ separately), each ``.lib`` or ``.lib.gz``.  :func:`read_library` parses all
of them into one :class:`Library` with every figure normalised to **ps, fF and um2**
(OSU018 is written in ns and pF, ASAP7 in ps and fF; area has no unit attribute in
liberty and is taken as um2, as both libraries draw it).

Derived figures, each defined once here:

GE unit
    The unit-drive two-input NAND (function ``!(A&B)``, two inputs, one output): the one
    named with drive suffix 1 (``NAND2X1``, ``NAND2x1_ASAP7_75t_R``), else the smallest
    by area, input capacitance, name (:func:`_unit_cell`).  Area in GE = area in um2 /
    the unit cell's area.  ASAP7's ``NAND2xp33`` is a fractional drive and not the unit.
FO4
    The stage delay of an infinite chain of identical inverters, each driving four copies
    of its own input capacitance, with the unit-drive (smallest X1) inverter chosen the
    same way (``INVX1``, ``INVx1_ASAP7_75t_R``).  The load is ``C = 4 * Cin`` (Cin = the input pin's
    ``capacitance``, else the mean of ``rise_capacitance`` and ``fall_capacitance``).  The
    input slew is the self-consistent slew of that chain: a rising output is driven by
    the previous stage's falling output, so ``s_rise = rise_transition(s_fall, C)`` and
    ``s_fall = fall_transition(s_rise, C)``, iterated from the tables' smallest slew to a
    fixed point (change < 1e-6 ps).  Then ``FO4 = (cell_rise(s_fall, C) +
    cell_fall(s_rise, C)) / 2``.  Every table look-up is bilinear in (input slew, load),
    extrapolating linearly outside the table as static timing tools do.

Where libraries are found (:func:`find_library`): ``osu018`` is
``$NMMX_LIB_DIR/osu018/osu018_stdcells.lib`` (default ``~/.cache/nmmx/lib``, where
``tools/setup-system.sh`` puts it); ``asap7`` is ``$NMMX_ASAP7_DIR`` or
``../shared/pdk/asap7`` beside the repository (for a ``git worktree``, beside its main
checkout too).  Anything else is a path or a comma list
of paths.
"""

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .liberty_text import eval_function

__all__ = ["Table", "Pin", "Arc", "PowerArc", "Cell", "Library", "LibraryError", "read_library",
           "find_library", "library_paths", "KNOWN_LIBRARIES"]

_REPO = Path(__file__).resolve().parent.parent

#: Library names :func:`library_paths` resolves by itself.
KNOWN_LIBRARIES = ("osu018", "asap7")


class LibraryError(ValueError):
    """A library that cannot be found or read; the message is one sentence."""


# -- locating ---------------------------------------------------------------------------------

def lib_root():
    """Directory of downloaded libraries (``$NMMX_LIB_DIR`` or ``~/.cache/nmmx/lib``)."""
    env = os.environ.get("NMMX_LIB_DIR")
    return Path(env) if env else Path.home() / ".cache" / "nmmx" / "lib"


def _checkout_roots():
    """The repository root, and for a ``git worktree`` also its main checkout's root."""
    roots = [_REPO]
    dot_git = _REPO / ".git"
    if dot_git.is_file():
        m = re.match(r"gitdir:\s*(.+)", dot_git.read_text().strip())
        if m:
            gitdir = (_REPO / m.group(1)).resolve()
            common = gitdir / "commondir"
            if common.is_file():
                roots.append((gitdir / common.read_text().strip()).resolve().parent)
    return roots


def _asap7_dirs():
    env = os.environ.get("NMMX_ASAP7_DIR")
    if env:
        return [Path(env)]
    return [root.parent / "shared" / "pdk" / "asap7" for root in _checkout_roots()]


def library_paths(spec):
    """The liberty files of ``spec``: ``"osu018"``, ``"asap7"``, a path or comma list of paths.

    Raises
    ------
    LibraryError
        A file does not exist (the message names every place that was looked in).
    """
    if isinstance(spec, (list, tuple)):
        paths = [Path(p) for p in spec]
    elif str(spec) == "osu018":
        path = lib_root() / "osu018" / "osu018_stdcells.lib"
        if not path.is_file():
            raise LibraryError(f"The OSU018 library was not found at {path} "
                               "(run tools/setup-system.sh as root, or set NMMX_LIB_DIR)")
        return [path]
    elif str(spec) == "asap7":
        for d in _asap7_dirs():
            found = sorted(d.glob("*.lib.gz")) + sorted(d.glob("*.lib"))
            found = [p for p in found if not p.name.startswith("LICENSE")]
            if found:
                return found
        raise LibraryError("The ASAP7 library was not found in "
                           + " or ".join(str(d) for d in _asap7_dirs())
                           + " (set NMMX_ASAP7_DIR to the directory of its .lib.gz files)")
    else:
        paths = [Path(p) for p in str(spec).split(",") if p.strip()]
    if not paths:
        raise LibraryError(f"The liberty list {str(spec)!r} names no file")
    for p in paths:
        if not p.is_file():
            raise LibraryError(f"The liberty file {str(p)!r} does not exist")
    return paths


def find_library(spec):
    """:func:`read_library` of :func:`library_paths` (``"osu018"``, ``"asap7"`` or paths)."""
    return read_library(library_paths(spec))


# -- the liberty syntax -----------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}();:,]|[^\s{}();:,"]+')
_NOISE = re.compile(r"/\*.*?\*/|\\\r?\n", re.S)


def _read_text(path):
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt") as f:
                return f.read()
        return path.read_text()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise LibraryError(f"The liberty file {str(path)!r} cannot be read: {e}") from None


class _Group:
    __slots__ = ("kind", "args", "attrs", "groups")

    def __init__(self, kind, args):
        self.kind, self.args, self.attrs, self.groups = kind, args, {}, []

    def sub(self, kind):
        return [g for g in self.groups if g.kind == kind]


def _unquote(tok):
    return tok[1:-1] if tok.startswith('"') else tok


def _parse(text, path):
    """The top ``library`` group of a liberty text (attributes, complex attributes, groups)."""
    toks = _TOKEN.findall(_NOISE.sub(" ", text))
    root = _Group("", [])
    stack = [root]
    i, n = 0, len(toks)
    try:
        while i < n:
            t = toks[i]
            if t == "}":
                stack.pop()
                i += 1
                continue
            if t == ";":
                i += 1
                continue
            nxt = toks[i + 1]
            if nxt == ":":
                # simple attribute: name : value ;  (the value may be several words)
                j = i + 2
                while j < n and toks[j] not in (";", "}") and not (
                        j + 1 < n and toks[j + 1] in (":", "(") and j > i + 2):
                    j += 1
                stack[-1].attrs[t] = " ".join(_unquote(x) for x in toks[i + 2:j])
                i = j
            elif nxt == "(":
                j = i + 2
                args = []
                while toks[j] != ")":
                    if toks[j] != ",":
                        args.append(_unquote(toks[j]))
                    j += 1
                j += 1
                if j < n and toks[j] == "{":
                    g = _Group(t, args)
                    stack[-1].groups.append(g)
                    stack.append(g)
                    j += 1
                else:
                    # complex attribute: name (args) ;
                    stack[-1].attrs.setdefault(t, args)
                i = j
            else:
                raise IndexError
    except IndexError:
        raise LibraryError(f"The liberty file {str(path)!r} has a syntax error near token "
                           f"{i} ({' '.join(toks[i:i + 6])!r})") from None
    libs = root.sub("library")
    if len(libs) != 1:
        raise LibraryError(f"The liberty file {str(path)!r} holds {len(libs)} library groups, "
                           "not one")
    return libs[0]


def _numbers(value):
    if isinstance(value, list):
        value = ",".join(value)
    return [float(x) for x in re.split(r"[,\s]+", value.strip()) if x]


_TIME = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6}
_CAP = {"ff": 1.0, "pf": 1e3, "nf": 1e6}


def _time_scale(lib, path):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]+)\s*", lib.attrs.get("time_unit", "1ns").lower())
    if not m or m.group(2) not in _TIME:
        raise LibraryError(f"The liberty file {str(path)!r} has an unknown time_unit "
                           f"{lib.attrs.get('time_unit')!r}")
    return float(m.group(1)) * _TIME[m.group(2)]


def _cap_scale(lib, path):
    unit = lib.attrs.get("capacitive_load_unit", ["1", "pf"])
    if not isinstance(unit, list) or len(unit) != 2 or unit[1].lower() not in _CAP:
        raise LibraryError(f"The liberty file {str(path)!r} has an unknown "
                           f"capacitive_load_unit {unit!r}")
    return float(unit[0]) * _CAP[unit[1].lower()]


# -- the data model -----------------------------------------------------------------------------

_SLEW_VARS = ("input_net_transition", "input_transition_time", "related_pin_transition",
              "constrained_pin_transition")
_LOAD_VARS = ("total_output_net_capacitance",)


@dataclass(frozen=True)
class Table:
    """One NLDM look-up table in ps/fF: ``values[i, j]`` at ``index_1[i]``, ``index_2[j]``.

    ``variables`` names what each index is (from the table's template), so
    :meth:`lookup` works whatever order a library writes them in.
    """

    variables: tuple
    index_1: np.ndarray
    index_2: np.ndarray
    values: np.ndarray

    def lookup(self, slew_ps, load_ff):
        """Bilinear interpolation at (input slew, output load), linear extrapolation outside."""
        coords = {}
        for var in self.variables:
            if var in _SLEW_VARS:
                coords[var] = slew_ps
            elif var in _LOAD_VARS:
                coords[var] = load_ff
            else:
                raise LibraryError(f"NLDM table variable {var!r} is not a slew or a load")
        x = coords[self.variables[0]] if self.variables else 0.0
        y = coords[self.variables[1]] if len(self.variables) > 1 else 0.0
        return _bilinear(self.index_1, self.index_2, self.values, x, y)


def _segment(index, x):
    """Index of the interval used for ``x`` and its fractional position (may lie outside [0, 1])."""
    if len(index) == 1:
        return 0, 0.0
    k = int(np.clip(np.searchsorted(index, x) - 1, 0, len(index) - 2))
    return k, (x - index[k]) / (index[k + 1] - index[k])


def _bilinear(ix, iy, v, x, y):
    v = np.atleast_2d(v)
    i, tx = _segment(ix, x)
    if v.shape[1] == 1:
        col = v[:, 0]
        return float(col[i] if len(ix) == 1 else col[i] + tx * (col[i + 1] - col[i]))
    j, ty = _segment(iy, y)
    i1 = min(i + 1, v.shape[0] - 1)
    row0 = v[i, j] + ty * (v[i, j + 1] - v[i, j])
    row1 = v[i1, j] + ty * (v[i1, j + 1] - v[i1, j])
    return float(row0 + tx * (row1 - row0))


@dataclass(frozen=True)
class PowerArc:
    """One ``internal_power`` group of a pin, energies in fJ per transition.

    ``related_pin`` is empty for an input pin's own (passive) power; ``rise``/``fall``
    are the tables of a rising/falling transition of the pin (``None`` when absent);
    ``pg_pin`` is the supply the energy is drawn from (ASAP7 splits VDD and VSS),
    ``when`` the state condition (empty: always).
    """

    related_pin: str
    rise: object
    fall: object
    pg_pin: str = ""
    when: str = ""


@dataclass(frozen=True)
class Pin:
    name: str
    direction: str
    capacitance_ff: float
    function: str = ""
    power: tuple = ()


@dataclass(frozen=True)
class Arc:
    """A timing arc ``related_pin -> pin`` with its delay/transition tables (ps, fF)."""

    related_pin: str
    pin: str
    timing_type: str
    timing_sense: str
    tables: dict


@dataclass(frozen=True)
class Cell:
    name: str
    area_um2: float
    pins: dict
    sequential: bool
    arcs: tuple = ()
    dont_use: bool = False
    #: Leakage in nW (``cell_leakage_power``, else the ``leakage_power`` groups: per
    #: supply the unconditional value, else the mean over its ``when`` states).
    leakage_nw: float = 0.0
    #: The ``ff`` or ``latch`` group: ``{"kind": "ff"|"latch", "vars": (IQ, IQN),
    #: "next_state"|"data_in": fn, "clocked_on"|"enable": fn, "clear": fn, "preset": fn}``
    #: (functions as liberty strings; absent keys are not in the group).
    state: object = None

    @property
    def inputs(self):
        return [p for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self):
        return [p for p in self.pins.values() if p.direction == "output"]

    def arc(self, related_pin, pin=None, timing_type=("", "combinational")):
        """The first arc from ``related_pin`` (to ``pin``) whose ``timing_type`` is one of those given."""
        types = (timing_type,) if isinstance(timing_type, str) else tuple(timing_type)
        for a in self.arcs:
            if a.related_pin == related_pin and (pin is None or a.pin == pin) \
                    and a.timing_type in types:
                return a
        raise LibraryError(f"The cell {self.name} has no {'/'.join(t or 'combinational' for t in types)} "
                           f"timing arc from {related_pin}")


@dataclass(frozen=True)
class Library:
    """A real NLDM library (one file or a set), every figure in ps, fF and um2.

    Members
    -------
    name : str
        ``library`` name of the first file (the set's name for a merged set).
    paths : tuple of Path
        The liberty files, in the order given.
    cells : dict of str to Cell
    time_unit_ps, cap_unit_ff : float
        The first file's ``time_unit`` in ps and ``capacitive_load_unit`` in fF (the
        units OpenSTA and ABC read and report in).
    ge_unit_cell, ge_unit_um2 : str, float
        The NAND2 that defines one GE (see the module docstring).
    fo4_inverter : str
        The inverter FO4 is measured on.
    fo4_ps : float
        FO4 delay (see the module docstring).
    """

    name: str
    paths: tuple
    cells: dict
    time_unit_ps: float
    cap_unit_ff: float = 1.0
    ge_unit_cell: str = ""
    ge_unit_um2: float = 0.0
    fo4_inverter: str = ""
    fo4_ps: float = 0.0
    fo4_slew_ps: float = 0.0
    fo4_load_ff: float = 0.0
    #: Nominal supply voltage in V (``nom_voltage``); energies are in fJ.
    voltage: float = 0.0
    _headers: tuple = field(default=(), repr=False, compare=False)

    def ge(self, area_um2):
        """Area in GE of the named NAND2 unit."""
        return area_um2 / self.ge_unit_um2

    def fo4(self, delay_ps):
        """Delay in FO4 of this library."""
        return delay_ps / self.fo4_ps

    def summary(self):
        """JSON-ready identity and derived figures of the library."""
        return {"library": self.name, "liberty": [str(p) for p in self.paths],
                "ge_unit_cell": self.ge_unit_cell, "ge_unit_um2": self.ge_unit_um2,
                "fo4_inverter": self.fo4_inverter, "fo4_ps": round(self.fo4_ps, 3),
                "cells": len(self.cells)}


def _pin_cap(attrs, scale):
    if "capacitance" in attrs:
        return float(attrs["capacitance"]) * scale
    caps = [float(attrs[k]) for k in ("rise_capacitance", "fall_capacitance") if k in attrs]
    return sum(caps) / len(caps) * scale if caps else 0.0


_ARC_TABLES = ("cell_rise", "cell_fall", "rise_transition", "fall_transition")


def _table(group, templates, t_scale, c_scale, value_scale):
    tmpl = templates.get(group.args[0] if group.args else "", {})
    variables = tuple(v for v in (tmpl.get("variable_1"), tmpl.get("variable_2")) if v)
    scales = [c_scale if v in _LOAD_VARS else t_scale for v in variables]
    idx = []
    for k, name in enumerate(("index_1", "index_2")):
        raw = group.attrs.get(name, tmpl.get(name))
        idx.append(np.array(_numbers(raw)) * scales[k] if raw is not None and k < len(scales)
                   else np.zeros(1))
    values = np.array([_numbers(v) for v in
                       (group.attrs["values"] if isinstance(group.attrs["values"], list)
                        else [group.attrs["values"]])])
    # A 1-D table is written as one row; make its axis the first.
    if len(variables) == 1:
        values = values.reshape(-1, 1)
    return Table(variables, idx[0], idx[1], values * value_scale)


_POWER_UNIT_NW = {"pw": 1e-3, "nw": 1.0, "uw": 1e3, "mw": 1e6}


def _leak_scale(lib, path):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]+)\s*",
                     lib.attrs.get("leakage_power_unit", "1nW").lower())
    if not m or m.group(2) not in _POWER_UNIT_NW:
        raise LibraryError(f"The liberty file {str(path)!r} has an unknown "
                           f"leakage_power_unit {lib.attrs.get('leakage_power_unit')!r}")
    return float(m.group(1)) * _POWER_UNIT_NW[m.group(2)]


def _leakage(cg, scale):
    """Leakage of a cell group in nW (see :attr:`Cell.leakage_nw`)."""
    if "cell_leakage_power" in cg.attrs:
        return float(cg.attrs["cell_leakage_power"]) * scale
    by_pg = {}
    for g in cg.sub("leakage_power"):
        pg = g.attrs.get("related_pg_pin", "")
        by_pg.setdefault(pg, ([], []))[0 if "when" in g.attrs else 1].append(
            float(g.attrs.get("value", 0.0)))
    total = 0.0
    for cond, plain in by_pg.values():
        vals = plain or cond
        total += (plain[0] if plain else sum(vals) / len(vals)) if vals else 0.0
    return total * scale


def _power_arcs(pg, templates, t_scale, c_scale):
    """The ``internal_power`` groups of a pin group (energies: liberty's cap unit x V^2,
    scaled to fF x V^2 = fJ)."""
    out = []
    for ig in pg.sub("internal_power"):
        tabs = {g.kind: _table(g, templates, t_scale, c_scale, c_scale)
                for g in ig.groups if g.kind in ("rise_power", "fall_power", "power")}
        rise = tabs.get("rise_power", tabs.get("power"))
        fall = tabs.get("fall_power", tabs.get("power"))
        for related in (ig.attrs.get("related_pin", "").split() or [""]):
            out.append(PowerArc(related, rise, fall, ig.attrs.get("related_pg_pin", ""),
                                ig.attrs.get("when", "")))
    return tuple(out)


def _state(cg):
    for kind in ("ff", "latch"):
        groups = cg.sub(kind)
        if groups:
            g = groups[0]
            out = {"kind": kind, "vars": tuple(g.args)}
            for key in ("next_state", "clocked_on", "data_in", "enable", "clear", "preset",
                        "clear_preset_var1", "clear_preset_var2"):
                if key in g.attrs:
                    out[key] = g.attrs[key]
            return out
    return None


def _cells(lib, path):
    t_scale, c_scale = _time_scale(lib, path), _cap_scale(lib, path)
    l_scale = _leak_scale(lib, path)
    templates = {g.args[0]: g.attrs for g in lib.groups
                 if g.kind in ("lu_table_template",) and g.args}
    out = {}
    for cg in lib.sub("cell"):
        name = cg.args[0]
        if "area" not in cg.attrs:
            raise LibraryError(f"The cell {name} in {str(path)!r} has no area")
        pins, arcs = {}, []
        pin_groups = list(cg.sub("pin"))
        for bus in cg.sub("bus"):
            pin_groups.extend(bus.sub("pin"))
        for pg in pin_groups:
            power = _power_arcs(pg, templates, t_scale, c_scale)
            for pname in pg.args:
                pins[pname] = Pin(pname, pg.attrs.get("direction", ""),
                                  _pin_cap(pg.attrs, c_scale), pg.attrs.get("function", ""),
                                  power)
            for tg in pg.sub("timing"):
                tables = {g.kind: _table(g, templates, t_scale, c_scale, t_scale)
                          for g in tg.groups if g.kind in _ARC_TABLES}
                for related in tg.attrs.get("related_pin", "").split():
                    arcs.append(Arc(related, pg.args[0], tg.attrs.get("timing_type", ""),
                                    tg.attrs.get("timing_sense", ""), tables))
        seq = bool(cg.sub("ff") or cg.sub("latch") or cg.sub("statetable"))
        out[name] = Cell(name, float(cg.attrs["area"]), pins, seq, tuple(arcs),
                         cg.attrs.get("dont_use", "false").lower() == "true",
                         _leakage(cg, l_scale), _state(cg))
    return out


def _function_is(cell, expected):
    """Does the single output's function equal ``expected(inputs)`` for every input vector?"""
    outs = cell.outputs
    if len(outs) != 1 or cell.sequential or not outs[0].function:
        return False
    ins = [p.name for p in cell.inputs]
    for k in range(2 ** len(ins)):
        env = {name: bool(k >> b & 1) for b, name in enumerate(ins)}
        try:
            got = eval_function(outs[0].function, env)
        except (ValueError, KeyError):
            return False
        if got != expected(*[env[n] for n in ins]):
            return False
    return True


_UNIT_DRIVE = re.compile(r"^[A-Za-z]+\d*[xX]1(?:_|$)")


def _unit_cell(cells, n_inputs, fn):
    """The unit-drive cell of a function: named ``...X1`` / ``...x1_...``, else the smallest.

    Among the cells computing ``fn`` with ``n_inputs`` inputs (``dont_use`` excluded), the
    ones whose name carries the drive suffix 1 win (OSU018 ``NAND2X1``, ``INVX1``; ASAP7
    ``NAND2x1_ASAP7_75t_R``, ``INVx1_ASAP7_75t_R``: ASAP7's ``xp33``/``xp67`` cells are
    fractional drives in the same footprint); then smallest area, smallest input
    capacitance, name.
    """
    cands = [c for c in cells.values()
             if not c.dont_use and len(c.inputs) == n_inputs and _function_is(c, fn)]
    if not cands:
        return None
    return min(cands, key=lambda c: (not _UNIT_DRIVE.match(c.name), c.area_um2,
                                     sum(p.capacitance_ff for p in c.inputs), c.name))


def _fo4(inv):
    cin = inv.inputs[0].capacitance_ff
    load = 4.0 * cin
    arc = inv.arc(inv.inputs[0].name)
    t = arc.tables
    s_rise = s_fall = float(t["rise_transition"].index_1.min() if
                            t["rise_transition"].variables[0] in _SLEW_VARS
                            else t["rise_transition"].index_2.min())
    for _ in range(200):
        new_rise = t["rise_transition"].lookup(s_fall, load)
        new_fall = t["fall_transition"].lookup(s_rise, load)
        done = abs(new_rise - s_rise) < 1e-6 and abs(new_fall - s_fall) < 1e-6
        s_rise, s_fall = new_rise, new_fall
        if done:
            break
    delay = (t["cell_rise"].lookup(s_fall, load) + t["cell_fall"].lookup(s_rise, load)) / 2
    return delay, (s_rise + s_fall) / 2, load


def _voltage(lib, path):
    """``nom_voltage`` in V (the ``voltage_unit`` must be 1V: energies are then cap x V^2)."""
    if lib.attrs.get("voltage_unit", "1V").replace(" ", "").upper() != "1V":
        raise LibraryError(f"The liberty file {str(path)!r} has voltage_unit "
                           f"{lib.attrs.get('voltage_unit')!r}, not 1V")
    try:
        return float(lib.attrs["nom_voltage"])
    except (KeyError, ValueError):
        raise LibraryError(f"The liberty file {str(path)!r} has no nom_voltage") from None


def read_library(paths):
    """Read one liberty file or a set (``.lib`` or ``.lib.gz``) into a :class:`Library`.

    Raises
    ------
    LibraryError
        A file is missing or unreadable, two files define the same cell, or the set has
        no NAND2 or inverter to define GE and FO4.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = tuple(Path(p) for p in paths)
    cells, headers, name, t_unit = {}, [], None, None
    for path in paths:
        if not path.is_file():
            raise LibraryError(f"The liberty file {str(path)!r} does not exist")
        lib = _parse(_read_text(path), path)
        if name is None:
            name, t_unit = lib.args[0] if lib.args else path.stem, _time_scale(lib, path)
            c_unit = _cap_scale(lib, path)
            volts = _voltage(lib, path)
        for cname, cell in _cells(lib, path).items():
            if cname in cells:
                raise LibraryError(f"The cell {cname} is defined twice in the liberty set "
                                   f"({', '.join(str(p) for p in paths)})")
            cells[cname] = cell
        headers.append(path)
    if len(paths) > 1:
        name = re.sub(r"_(AO|OA|SIMPLE|INVBUF|SEQ)_", "_", name)
    nand = _unit_cell(cells, 2, lambda a, b: not (a and b))
    inv = _unit_cell(cells, 1, lambda a: not a)
    where = ", ".join(str(p) for p in paths)
    if nand is None:
        raise LibraryError(f"The liberty set {where} has no two-input NAND to define GE")
    if inv is None:
        raise LibraryError(f"The liberty set {where} has no inverter to define FO4")
    fo4, slew, load = _fo4(inv)
    return Library(name=name, paths=paths, cells=cells, time_unit_ps=t_unit,
                   cap_unit_ff=c_unit, ge_unit_cell=nand.name, ge_unit_um2=nand.area_um2,
                   fo4_inverter=inv.name, fo4_ps=fo4, fo4_slew_ps=slew, fo4_load_ff=load,
                   voltage=volts, _headers=tuple(headers))


# -- one liberty for Yosys ------------------------------------------------------------------------
