"""Energy per MAC of a PE from gate-level activity in a real library (issue #14).

The flow (``docs/energy.md`` states the method, assumptions and limits):

1. **Netlist** (:func:`mapped_pe`): the config's PE between the link registers that
   drive it in the array (:class:`synth.timing.Registered`) is mapped into the library
   by :func:`synth.timing.mapping_commands`'s steps, module by module (``synth`` without
   ``-flatten``, ``dfflibmap``, ``abc -D`` at the clock), then flattened, so that every
   cell's name still carries its unit (``$flatten\\unit.\\mul0.``).  Yosys writes the
   netlist (``write_verilog -noattr``) and its JSON.
2. **Attribution** (:func:`cell_categories`): into issue #14's units
   (:data:`ENERGY_CATEGORIES`); a cell inside a unit counts by the unit's class
   (:func:`energy_units`); the PE's own cells by :func:`synth.attribution.cell_owners`
   (a register's declared category, shared cells split evenly), as the area breakdown
   does, with the area category ``accumulators`` split by register name
   (:data:`ACCUMULATOR_REGISTERS`); the link registers are pipeline registers.  A cell
   no unit is named for is an error (:class:`UnmappedError`).
3. **Stimulus** (:func:`pe_stream`): the words PE (0, 0) sees in the output-stationary
   engine for one GEMM of a ``python -m sim`` data class: its A and W buffer words and
   scales from :func:`golden.pack.pack_operands` (bank 0), one group per cycle, tiles in
   the controller's order, control from :data:`hw.pe.control_layout`.  Weight
   stationary (:func:`ws_pe_stream`): the PE of row :func:`ws_energy_row` of column 0,
   its ``psum_in`` the exact partial sums of the rows above from :mod:`golden.psum`.
4. **Simulation** (:mod:`synth.cellsim`): Verilator, zero delay, toggles counted by the
   cell models.
   The weight-stationary MX block-end unit (:func:`block_end_energy`) is mapped and
   simulated the same way on the partial sums golden says it receives
   (:func:`ws_block_end_stream`, :mod:`golden.psum`).
5. **Energy** (:func:`energy_of`): per net ``toggles x C_load x V^2 / 2`` (C_load = the
   input pins it drives, no wire load), internal energy per output toggle from the
   ``internal_power`` tables at the net's load and the library's FO4 slew, input pins'
   own internal energy per toggle, per register and cycle its clock pin's internal
   energy plus ``C_clk x V^2``, and leakage x cycles x clock period.
"""

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from amaranth.lib.wiring import In

from nmmx.cache import Cache, DictOf, Number

from . import cellsim
from .area import cache_dir
from .attribution import cell_owners
from .liberty import Liberty
from .timing import Registered, abc_constraints, design_of_config, liberty_file, \
    mapping_commands
from .yosys import run_yosys, yosys_version

__all__ = ["ENERGY_CATEGORIES", "UNIT_LABELS", "UnmappedError", "energy_units", "register_unit", "mapped_pe", "cell_categories", "pe_stream", "energy_of",
           "pe_energy", "block_end_energy", "ws_block_end_stream", "mapped_block_end",
           "block_end_links", "switching_power_uniform", "sta_power", "Netlist", "DEFAULT_CYCLES", "LABEL"]

#: Keys of the logic breakdown, issue #14's units: the sparse select, the multipliers,
#: the block accumulator (the exact integer sums: the products' adder tree and its
#: register, the MX block accumulator, the weight-stationary MX partial sums), the
#: block converter, the output accumulator (binary32 for MX, int32 for int8), the
#: pipeline registers, ``other`` (logic that only drives an output port), then clock
#: and leakage.
ENERGY_CATEGORIES = ("sparse_select", "multipliers", "block_accumulator", "converter",
                     "output_accumulator", "pipeline_registers", "other", "clock", "leakage")
#: How reports name the units.
UNIT_LABELS = {"sparse_select": "select", "multipliers": "multipliers",
               "block_accumulator": "block accumulator", "converter": "converter",
               "output_accumulator": "binary32 accumulator (int32 for int8)",
               "pipeline_registers": "pipeline registers", "other": "other",
               "clock": "clock", "leakage": "leakage"}
#: Cycles of PE activity simulated by default.
DEFAULT_CYCLES = 10_000
#: What every energy figure is.
LABEL = "zero-delay gate-level activity (no glitches), pin loads only (no wire load)"

#: Modules whose own cells are attributed register by register (synth.attribution).
_OWN_CELL_CLASSES = ("PE", "WSPE", "MultiPE", "WSBlockEnd")

#: An area category (``hw.component.AREA_CATEGORIES``) -> its energy unit; the area
#: breakdown's ``accumulators`` is split by :data:`ACCUMULATOR_UNITS` and
#: :data:`ACCUMULATOR_REGISTERS`.
AREA_TO_ENERGY = {"sparse_select": "sparse_select", "multipliers": "multipliers",
                  "scale_and_convert": "converter", "pipeline_registers": "pipeline_registers",
                  "other": "other"}
#: Unit classes of area category ``accumulators``, by class name -> energy unit.
ACCUMULATOR_UNITS = {"Float32Adder": "output_accumulator"}
#: Registers a PE declares ``accumulators`` (``nmmx_area``), by name (the part before
#: any ``.`` or ``$``) -> energy unit; ``None``: the weight-stationary partial sum, the
#: block accumulator for MX (exact partial block sums) and the output accumulator for
#: int8 (the int32 sums).  ``psum`` is the registered sum of the N products, ``bacc``
#: the MX block accumulator (``bacc_s``/``bacc_c``: its carry-save rows, resolved by a
#: carry-select adder), ``acc`` the output accumulator (``acc_lo``/``acc_hi``: its
#: halves when it is split with a registered carry).  Yosys keeps one name of the nets
#: it merges, with the attributes of all: ``<name>_term``, the split accumulator's input
#: (``psum`` sign-extended), is the name the products' sum register keeps there.  A
#: register of any other name is an error (the tests map every PE), not a guess.
ACCUMULATOR_REGISTERS = ((re.compile(r"^(psum|bacc|bacc_s|bacc_c|acc_term)$"),
                          "block_accumulator"),
                         (re.compile(r"^acc(_lo|_hi)?$"), "output_accumulator"),
                         (re.compile(r"^psum_out$"), None))


class UnmappedError(ValueError):
    """A unit class or a declared register that no energy unit is named for."""


def energy_units():
    """Class name -> energy unit of every ``hw`` unit that declares an ``area_category``
    (:func:`hw.component.unit_categories`); raises :class:`UnmappedError` for a class of
    area category ``accumulators`` missing from :data:`ACCUMULATOR_UNITS`."""
    from hw.component import unit_categories
    out = {}
    for cls, area in unit_categories().items():
        if area == "accumulators":
            if cls not in ACCUMULATOR_UNITS:
                raise UnmappedError(f"Unit class {cls} is an accumulator that "
                                    "synth.energy.ACCUMULATOR_UNITS does not name")
            out[cls] = ACCUMULATOR_UNITS[cls]
        else:
            out[cls] = AREA_TO_ENERGY[area]
    return out


def register_unit(register, area, scaled, aliases=()):
    """The energy unit of a PE register ``register`` of declared area category ``area``
    (``None``: undeclared, a pipeline register) in an MX (``scaled``) or int8 PE.
    ``aliases``: other names of the register's nets (Yosys keeps one name of several
    for a flip-flop's output; an accumulator is recognised by any of them)."""
    if area is None:
        return "pipeline_registers"
    if area != "accumulators":
        if area not in AREA_TO_ENERGY:
            raise UnmappedError(f"Register {register} has area category {area}, which no "
                                "energy unit is named for")
        return AREA_TO_ENERGY[area]
    for name in (register, *aliases):
        base = re.split(r"[.$\\[]", name, maxsplit=1)[0]
        for pattern, unit in ACCUMULATOR_REGISTERS:
            if pattern.match(base):
                if unit is None:
                    if scaled is None:
                        raise UnmappedError(f"Accumulator register {register} needs to "
                                            "know whether the config is MX")
                    unit = "block_accumulator" if scaled else "output_accumulator"
                return unit
    raise UnmappedError(f"Accumulator register {register} is not named in "
                        "synth.energy.ACCUMULATOR_REGISTERS")


def _aliases(mod_json):
    """Net name -> the other net names that share a bit with it."""
    by_bit = {}
    for name, info in mod_json.get("netnames", {}).items():
        for b in info["bits"]:
            if isinstance(b, int):
                by_bit.setdefault(b, set()).add(name)
    out = {}
    for name, info in mod_json.get("netnames", {}).items():
        out[name] = sorted(set().union(*(by_bit.get(b, set()) for b in info["bits"]
                                         if isinstance(b, int))) - {name})
    return out


# -- 1. the mapped netlist ------------------------------------------------------------------

def _map_commands(top, clock_ps):
    """:func:`synth.timing.mapping_commands` module by module, then flattened."""
    base = mapping_commands("design.il", "cells.lib", top, clock_ps)
    out = []
    for cmd in base:
        if cmd.startswith("synth -flatten"):
            out.append(f"synth -noabc -top {top}")
        elif cmd.startswith("splitnets"):
            continue
        elif cmd.startswith("tee ") or cmd.startswith("write_verilog"):
            continue
        else:
            out.append(cmd)
    return out + ["write_json hier.json", "flatten", "opt_clean -purge", "write_json flat.json",
                  "write_verilog -noattr -noexpr -nohex -nodec netlist.v"]


def energy_design(config):
    """The design simulated: ``config``'s PE behind the array's own registers that drive
    it, its input links (activations, control, weights or the load bus); a
    weight-stationary PE's ``psum_in`` comes straight in, since it is the ``psum_out``
    register of the PE above, counted in that PE."""
    from golden.config import Dataflow
    pe = design_of_config(config)
    if config.dataflow != Dataflow.WS:
        return Registered(pe, outputs=False)
    names = [n for n, mb in pe.signature.members.items() if mb.flow == In and n != "psum_in"]
    return Registered(pe, outputs=False, inputs=tuple(names))


def block_end_links(config):
    """``config``'s :class:`hw.ws_pe.WSBlockEnd` with the registers that drive it in the
    array: the row's control and activation scale (one register after the PE's, as
    :class:`hw.ws_array.WSArray` delays them) and the load bus's scale field.  The
    partial sums come straight from registers already counted (the PE's ``psum_out``,
    the accumulator memory's read port), and ``ld_en``/``ld_sel`` are decoded from the
    load bus the PEs' input registers stand for."""
    from hw.ws_pe import WSBlockEnd
    return Registered(WSBlockEnd(config), outputs=False,
                      inputs=("ctl", "a_scale", "ld_scale"))


def mapped_pe(config, library, clock_ps, *, yosys=None, cache=None):
    """Map ``config``'s PE (:func:`energy_design`) into ``library``; return the directory
    holding ``flat.json``, ``hier.json``, ``netlist.v`` and ``classes.json`` (cached by
    the RTLIL, liberty, clock and commands)."""
    return _mapped(energy_design(config), library, clock_ps, yosys=yosys, cache=cache)


def mapped_block_end(config, library, clock_ps, *, yosys=None, cache=None):
    """Map ``config``'s weight-stationary block-end unit (:func:`block_end_links`) as
    :func:`mapped_pe` maps the PE."""
    return _mapped(block_end_links(config), library, clock_ps, yosys=yosys, cache=cache)


def _mapped(design, library, clock_ps, *, yosys=None, cache=None):
    from .rtlil import rtlil_of
    top = "top"
    text, classes = rtlil_of(design, top)
    lib_path = liberty_file(library)
    cmds = _map_commands(top, clock_ps)
    key = hashlib.sha256(json.dumps({
        "rtlil": hashlib.sha256(text.encode()).hexdigest(),
        "liberty": hashlib.sha256(lib_path.read_bytes()).hexdigest(), "cmds": cmds,
        "constr": abc_constraints(library), "yosys": yosys_version(yosys), "v": 1},
        sort_keys=True).encode()).hexdigest()[:24]
    out = Path(cache if cache is not None else cache_dir()) / "energy" / "netlist" / key
    if (out / "done").is_file():
        return out
    with tempfile.TemporaryDirectory(prefix="nmmx-energy-") as tmp:
        Path(tmp, "design.il").write_text(text)
        shutil.copyfile(lib_path, Path(tmp, "cells.lib"))
        Path(tmp, "abc.constr").write_text(abc_constraints(library))
        Path(tmp, "map.ys").write_text("\n".join(cmds) + "\n")
        run_yosys("map.ys", tmp, yosys)
        Path(tmp, "classes.json").write_text(json.dumps(classes, sort_keys=True))
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
        for f in ("flat.json", "hier.json", "netlist.v", "classes.json", "map.ys"):
            shutil.copyfile(Path(tmp, f), staging / f)
        (staging / "done").write_text(key)
        try:
            staging.rename(out)          # atomic; a parallel run may have won the race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return out


# -- 2. attribution ---------------------------------------------------------------------------

_FLAT = re.compile(r"^\$flatten((?:\\[^.\\]+\.)+)(.*)$")


def _split_name(name):
    """A flattened cell name -> (instance path below the top, local name)."""
    m = _FLAT.match(name)
    if not m:
        return (), name
    return tuple(s.lstrip("\\") for s in m.group(1).split(".") if s), m.group(2)


def _attr_liberty(library):
    """The :class:`synth.liberty.Liberty` view :mod:`synth.attribution` walks with."""
    area = {n: c.area_um2 for n, c in library.cells.items()}
    outputs = {n: c.outputs[0].name for n, c in library.cells.items() if c.outputs}
    seq = frozenset(n for n, c in library.cells.items() if c.sequential)
    return Liberty(Path(library.paths[0]), area, outputs, seq)


def cell_categories(netdir, library, scaled=None):
    """Ordered cell names of the flat netlist and, per cell, ``{energy unit: share}``.

    A cell inside a unit counts by the unit's class (:func:`energy_units`); a cell of a
    PE's (or block-end unit's) own logic by the registers it feeds
    (:func:`synth.attribution.cell_owners`, shared cells split evenly, each register by
    :func:`register_unit`), logic that feeds a submodule of no declared category or a
    top-level cell (the link registers) is pipeline, logic that only drives an output
    port is ``other``.  ``scaled``: the netlist is of an MX config (it decides the
    weight-stationary partial sum's unit).  Raises :class:`UnmappedError` for a cell no
    unit is named for."""
    flat = json.loads(Path(netdir, "flat.json").read_text())["modules"]["top"]
    hier = json.loads(Path(netdir, "hier.json").read_text())["modules"]
    classes = json.loads(Path(netdir, "classes.json").read_text())
    units = energy_units()
    alib = _attr_liberty(library)
    owners_of = {}
    names = sorted(flat["cells"])
    out = []
    for name in names:
        path, local = _split_name(name)
        cat = None
        for depth in range(len(path), 0, -1):
            cls = classes.get(".".join(("top",) + path[:depth]))
            if cls in units:
                cat = {units[cls]: 1.0}
                break
        mod = ".".join(("top",) + path)
        if cat is None and path and classes.get(mod) in _OWN_CELL_CLASSES:
            if mod not in owners_of:
                owners_of[mod] = cell_owners(hier[mod], alib) + (_aliases(hier[mod]),)
            owners, declared, aliases = owners_of[mod]
            cat = {}
            for owner, share in owners.get(local, {"unattributed": 1.0}).items():
                if owner.startswith("sub:"):
                    sub = classes.get(f"{mod}.{owner[4:]}")
                    c = units.get(sub, "pipeline_registers")
                elif owner.startswith("out:") or owner == "unattributed":
                    c = "other"
                else:
                    c = register_unit(owner, declared.get(owner), scaled,
                                      aliases.get(owner, ()))
                cat[c] = cat.get(c, 0.0) + share
        elif cat is None and path:
            raise UnmappedError(f"Cell {name} sits in module {mod} of class "
                                f"{classes.get(mod)}, which no energy unit is named for")
        if cat is None:
            cat = {"pipeline_registers": 1.0}
        out.append(cat)
    return names, out, flat


# -- 3. the stimulus ----------------------------------------------------------------------------

def stimulus_fields(design):
    """``[(port, offset, width)]`` of the stimulus word: the PE's inputs (which
    :func:`energy_design` registers under the same names), widths from its signature."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import In
    design._MustUse__silence = True     # only its signature is read
    out, off = [], 0
    for name, member in design.signature.members.items():
        if member.flow == In:
            width = Value.cast(getattr(design, name)).shape().width
            out.append((name, off, width))
            off += width
    return out, off


def _bank0(writes, sel):
    from golden.pack import WR_SEL
    pick = (writes.sel == WR_SEL[sel]) & (writes.bank == 0)
    table = np.zeros(int(writes.addr[pick].max()) + 1, dtype=object)
    table[writes.addr[pick]] = [int(x) for x in writes.data[pick]]
    return table


def pe_stream(config, m, k, n, data="gaussian", seed=0, cycles=DEFAULT_CYCLES, mode=None):
    """The inputs PE (0, 0) of the output-stationary engine sees for one ``m x k x n``
    GEMM of class ``data``: ``{port: object array of ints}`` per cycle (the first
    ``cycles`` cycles of the GEMM, tiles in the controller's order), and the number of
    issued (valid) groups among them.  A unified engine's GEMM runs in ``mode``: operands
    of ``config.mode(mode)`` in the unified words, the ``mode`` input held at its value."""
    from golden.pack import pack_operands
    from hw.pe import control_layout
    from sim.stimulus import make_operands
    one = config.mode(mode) if config.unified else config
    enc = make_operands(one, m, k, n, data=data, seed=seed)
    writes = pack_operands(config, enc, mode if config.unified else None)
    sched = one.schedule
    g_n, gpb = one.groups(k), one.groups_per_block
    b_n = one.padded_k(k) // config.block_size
    tiles_r, tiles_c = -(-m // config.rows), -(-n // config.cols)
    period = sched.tile_period(k)
    ti, tj = np.divmod(np.arange(tiles_r * tiles_c), tiles_c)
    # Every tile: G issued groups, then idle cycles up to the tile period.
    t = np.repeat(np.arange(tiles_r * tiles_c), period)[:cycles]
    g = np.tile(np.arange(period), tiles_r * tiles_c)[:cycles]
    valid = g < g_n
    gg = np.minimum(g, g_n - 1)
    a_addr = ti[t] * config.groups_max + gg
    w_addr = tj[t] * config.groups_max + gg
    a_words, w_words = _bank0(writes, "a_data"), _bank0(writes, "w_data")
    f = {name: control_layout[name].offset for name in ("valid", "tfirst", "tlast",
                                                      "bfirst", "blast")}
    ctl = (valid.astype(np.int64) << f["valid"]) | \
        ((valid & (g == 0)).astype(np.int64) << f["tfirst"]) | \
        ((valid & (g == g_n - 1)).astype(np.int64) << f["tlast"]) | \
        ((valid & (gg % gpb == 0)).astype(np.int64) << f["bfirst"]) | \
        ((valid & (gg % gpb == gpb - 1)).astype(np.int64) << f["blast"])
    zero = np.zeros(len(t), dtype=object)
    out = {"a": np.where(valid, a_words[a_addr], zero),
           "w": np.where(valid, w_words[w_addr], zero),
           "ctl": ctl.astype(object)}
    if config.scaled:
        b = gg // gpb
        out["a_scale"] = _bank0(writes, "a_scale")[ti[t] * config.blocks_max + b]
        out["w_scale"] = _bank0(writes, "w_scale")[tj[t] * config.blocks_max + b]
        assert b.max() < b_n
    if config.unified:
        out["mode"] = np.full(len(t), config.mode_index(mode), dtype=object)
    return out, int(valid.sum())


def ws_energy_row(config):
    """The array row whose PE :func:`ws_pe_stream` drives: the middle row of the column's
    first block segment (rows ``0 .. ws_block_end_rows[0]`` for MX, the ``F`` rows of a
    pass for int8).  The rows of a segment carry the sums of 0, 1, .. of its K-groups
    into their ``psum_in``, so the middle row's partial sums (of about half of them) and
    its adder's activity are the column's typical ones; row 0 would add to zero and the
    last row before a block end would see the longest sums."""
    seg = config.ws_block_end_rows[0] + 1 if config.scaled else config.ws_fold_groups
    return seg // 2


def _ws_column_sums(config, enc, tile, i, lo, hi, on):
    """Per cycle, where ``on``: the exact sum of K-groups ``lo .. hi-1`` of activation row
    ``i`` in output column ``tile * cols`` (:func:`golden.psum.column_prefix`), wrapped to
    the partial-sum field (``exact`` for MX, ``acc`` for int8) at its offset in
    :func:`hw.ws_pe.ws_psum_layout`; zero elsewhere.  The one path from golden's sums to
    the words a column carries, for the PE's and the block-end unit's streams."""
    from golden.psum import column_prefix, group_sums
    from hw.ws_pe import ws_psum_layout
    field = ws_psum_layout(config)["exact" if config.scaled else "acc"]
    mask = (1 << field.shape.width) - 1
    out = np.zeros(len(i), dtype=object)
    for j in np.unique(tile[on]) * config.cols:
        pre = column_prefix(group_sums(enc, config, int(j)))
        sel = on & (tile * config.cols == j)
        out[sel] = [(int(x) & mask) << field.offset
                    for x in pre[hi[sel], i[sel]] - pre[lo[sel], i[sel]]]
    return out


def _finite_operands(config, m, k, n, data, seed, what):
    """``make_operands``; an MX class with NaN or Inf codes is refused (the streams model
    the partial sums' special flags as zero)."""
    from golden.psum import has_specials
    from sim.stimulus import make_operands
    enc = make_operands(config, m, k, n, data=data, seed=seed)
    if config.scaled and has_specials(enc, config):
        raise ValueError(f"The {what} energy stream models finite operands only, and "
                         f"data class {data} has NaN or Inf codes")
    return enc


def ws_pe_stream(config, m, k, n, data="gaussian", seed=0, cycles=DEFAULT_CYCLES, row=None):
    """The inputs PE (``row``, 0) of the weight-stationary engine sees for one ``m x k x
    n`` GEMM (see :func:`pe_stream`; ``row`` default :func:`ws_energy_row`): per weight
    pass (column tiles outer, folds inner, :meth:`golden.schedule.WSSchedule.passes`)
    ``pass_period(m)`` cycles, the first ``m`` carrying activation row i's K-group
    ``fold * F + row`` (``F = ws_fold_groups``), ``wsel`` the pass's weight register;
    the next pass's weights of the row load into the other register ``F`` cycles
    before the pass ends (the first pass's before it starts).  ``psum_in`` is what the
    PE above hands down for row i (:func:`_ws_column_sums`): the exact sum of the pass's
    K-groups above this row, from the first row below the last block-end unit above it
    (MX with blocks inside a pass), else from row 0 (the carried state joins below);
    its special flags are zero (finite operands).  Constant skews between rows are left
    out: they do not change a PE's toggles."""
    from golden.pack import pack_operands
    from hw.ws_pe import ws_control_layout
    r = ws_energy_row(config) if row is None else row
    if not 0 <= r < config.ws_fold_groups:
        raise ValueError(f"Row {r} is not a row of the {config.ws_fold_groups} rows of a "
                         "weight pass")
    enc = _finite_operands(config, m, k, n, data, seed, "weight-stationary PE")
    writes = pack_operands(config, enc)
    f_groups, g_n = config.ws_fold_groups, config.groups(k)
    t, p, c, tile, fold, n_pass, period = _ws_passes(config, m, k, n, cycles)
    group = fold * f_groups + r                      # this row's K-group of the pass
    live = (t >= 0) & (c < m)
    valid = live & (group < g_n)
    i = np.clip(c, 0, m - 1)
    a_words, w_words = _bank0_all(writes, "a_data"), _bank0(writes, "w_data")
    a_addr = (i // config.rows) * config.groups_max + np.minimum(group, g_n - 1)
    a = np.where(valid, [a_words[b][x] for b, x in zip(i % config.rows, a_addr)],
                 np.zeros(len(t), dtype=object))
    # Loads: pass q's weights at cycle (start of q) - F, into register q % 2.
    q = p + 1 + (t < 0) * -1                         # the pass a load in this cycle is for
    load_at = np.where(t < 0, t == -f_groups, c == period - f_groups)
    q_tile, q_fold = np.divmod(np.clip(q, 0, n_pass - 1), config.schedule.folds(k))
    ld_en = load_at & (q < n_pass) & (q_fold * f_groups + r < g_n)
    qq = np.clip(q, 0, n_pass - 1)
    w_addr = q_tile * config.groups_max + np.minimum(q_fold * f_groups + r, g_n - 1)
    ld_w = np.where(ld_en, w_words[np.minimum(w_addr, len(w_words) - 1)],
                    np.zeros(len(t), dtype=object))
    f = {name: ws_control_layout[name].offset for name in ("valid", "wsel", "bend")}
    bend = r in config.ws_block_end_rows
    ctl = (valid.astype(np.int64) << f["valid"]) | ((p % 2).astype(np.int64) << f["wsel"]) | \
        ((valid & bend).astype(np.int64) << f["bend"])
    # The sums above this row: from the segment's first row (the row after the last
    # block end above it; blocks that span passes end below the last row only).
    gpb = config.groups_per_block
    start = r // gpb * gpb if config.scaled and not config.ws_carry_exact else 0
    hi = np.minimum(group, g_n)
    lo = np.minimum(fold * f_groups + start, hi)
    psum = _ws_column_sums(config, enc, tile, i, lo, hi, live)
    out = {"a": a, "ctl": ctl.astype(object), "ld_en": ld_en.astype(object),
           "ld_sel": (qq % 2).astype(object), "ld_w": ld_w, "psum_in": psum}
    return out, int(valid.sum())


def _ws_passes(config, m, k, n, cycles):
    """Per cycle of the weight-stationary stream (see :func:`ws_pe_stream`): the cycle
    within the passes ``t`` (negative: the prologue), the pass ``p``, the activation
    row ``c`` within it, its column tile and fold, and the number of passes."""
    sched = config.schedule
    f_groups, period = config.ws_fold_groups, sched.pass_period(m)
    folds, tiles_c = sched.folds(k), -(-n // config.cols)
    n_pass = folds * tiles_c
    total = f_groups + n_pass * period
    t = np.arange(min(cycles, total)) - f_groups
    p = np.clip(t // period, 0, n_pass - 1)
    c = t - p * period
    tile, fold = np.divmod(p, folds)
    return t, p, c, tile, fold, n_pass, period


def ws_block_end_stream(config, m, k, n, data="gaussian", seed=0, cycles=DEFAULT_CYCLES):
    """The inputs the first block-end unit of column 0 (below row
    ``e = config.ws_block_end_rows[0]``) of the weight-stationary engine sees for one
    ``m x k x n`` GEMM, aligned with :func:`ws_pe_stream`'s passes: per pass and
    activation row ``i`` (output row ``i``, output column ``tile * cols``):

    - ``psum_in``: the exact partial of the block that row ``e``'s K-group belongs to,
      over its groups up to that one (:func:`golden.psum.column_partials`; with blocks
      spanning passes, the carried partial included), and its special flags (zero: the
      operands must be finite);
    - ``fp_in``: the binary32 partial before that block; ``a_scale``: row ``i``'s scale of
      the block;
    - ``ctl``: ``valid``, ``wsel`` (the pass's register), ``bend`` (the block ends at row
      ``e`` in this pass);
    - the pass's weight-column scale loaded into the other register ``F`` cycles before
      the pass ends, as :func:`ws_pe_stream` loads the weights.

    Idle cycles carry zeros.  Returns the stream and the K-groups the PEs of rows
    ``0 .. e`` of column 0 issue in those cycles (the MACs the unit serves)."""
    from golden.psum import column_partials
    from hw.ws_pe import ws_control_layout
    enc = _finite_operands(config, m, k, n, data, seed, "block-end")
    e = config.ws_block_end_rows[0]
    f_groups, gpb, g_n = config.ws_fold_groups, config.groups_per_block, config.groups(k)
    t, p, c, tile, fold, n_pass, period = _ws_passes(config, m, k, n, cycles)
    i = np.clip(c, 0, m - 1)
    hi = np.minimum(fold * f_groups + e + 1, g_n)    # groups 0 .. hi-1 are above the unit
    b = (hi - 1) // gpb
    valid = (t >= 0) & (c < m) & (fold * f_groups + e < g_n)
    bend = valid & (hi % gpb == 0)
    # The exact partial of the block of group hi - 1, over its groups up to that one
    # (with blocks spanning passes, the carried partial joined above the unit included);
    # the flags stay zero (finite operands).
    psum = _ws_column_sums(config, enc, tile, i, (hi - 1) // gpb * gpb, hi, valid)
    fp = np.zeros(len(t), dtype=np.uint32)
    for j in np.unique(tile[valid]) * config.cols:
        _, fp_before = column_partials(enc, config, int(j))
        on = valid & (tile * config.cols == j)
        fp[on] = fp_before[b[on], i[on]].view(np.uint32)
    f = {name: ws_control_layout[name].offset for name in ("valid", "wsel", "bend")}
    ctl = (valid.astype(np.int64) << f["valid"]) | ((p % 2).astype(np.int64) << f["wsel"]) | \
        (bend.astype(np.int64) << f["bend"])
    a_scale = np.where(valid, enc.a_scales[i, np.minimum(b, enc.a_scales.shape[1] - 1)],
                       0).astype(object)
    # Loads: pass q's column scale at cycle (start of q) - F, into register q % 2.
    folds = n_pass // max(1, -(-n // config.cols))
    q = p + 1 + (t < 0) * -1
    load_at = np.where(t < 0, t == -f_groups, c == period - f_groups)
    ld_en = load_at & (q < n_pass)
    qq = np.clip(q, 0, n_pass - 1)
    q_tile, q_fold = np.divmod(qq, folds)
    q_b = (np.minimum(q_fold * f_groups + e + 1, g_n) - 1) // gpb
    ld_scale = np.where(ld_en, enc.w_scales[q_b, np.minimum(q_tile * config.cols, n - 1)],
                        0).astype(object)
    out = {"psum_in": psum, "fp_in": fp.astype(object),
           "a_scale": a_scale, "ctl": ctl.astype(object), "ld_en": ld_en.astype(object),
           "ld_sel": (qq % 2).astype(object), "ld_scale": ld_scale}
    # The K-groups rows 0 .. e issue in these cycles (each row r of a pass: group
    # fold * F + r, every activation row of the pass).
    rows_on = sum(int(((t >= 0) & (c < m) & (fold * f_groups + r < g_n)).sum())
                  for r in range(e + 1))
    return out, rows_on


def _bank0_all(writes, sel):
    """Bank -> address table of every bank of buffer ``sel``."""
    from golden.pack import WR_SEL
    out = {}
    for bank in np.unique(writes.bank[writes.sel == WR_SEL[sel]]):
        pick = (writes.sel == WR_SEL[sel]) & (writes.bank == bank)
        table = np.zeros(int(writes.addr[pick].max()) + 1, dtype=object)
        table[writes.addr[pick]] = [int(x) for x in writes.data[pick]]
        out[int(bank)] = table
    return out


def stream_words(fields, stream):
    """One integer word per cycle of the ``stream`` ports packed at ``fields``."""
    words = np.zeros(len(next(iter(stream.values()))), dtype=object)
    for name, off, width in fields:
        words = words + (stream[name] << off)
    return [int(w) for w in words]


def input_toggles(fields, stream):
    """Toggles of every stimulus bit: ``{(port, bit): count}`` (the testbench registers
    the word, so its bits change as the words do)."""
    out = {}
    for name, off, width in fields:
        vals = np.concatenate([[0], stream[name]]).astype(object)
        diff = vals[1:] ^ vals[:-1]
        for bit in range(width):
            out[(name, bit)] = int(sum((diff >> bit) & 1))
    return out


# -- 5. energy --------------------------------------------------------------------------------

def _mean_energy(arcs, slew, load, related=None):
    """Energy per transition (fJ) of a set of :class:`synth.nldm.PowerArc`: per supply
    the mean over ``when`` states of (rise + fall) / 2, summed over supplies, then the
    mean over related pins."""
    by_rel = {}
    for a in arcs:
        if related is not None and (a.related_pin == "") != (related == ""):
            continue
        vals = [tb.lookup(slew, load) for tb in (a.rise, a.fall) if tb is not None]
        if vals:
            by_rel.setdefault(a.related_pin, {}).setdefault(a.pg_pin, []).append(
                sum(vals) / len(vals))
    if not by_rel:
        return 0.0
    per = [sum(sum(v) / len(v) for v in pg.values()) for pg in by_rel.values()]
    return sum(per) / len(per)


class Netlist:
    """The flat mapped netlist as arrays: cells, net loads, drivers, categories."""

    def __init__(self, netdir, library, scaled=None):
        self.library = library
        self.names, self.categories, self.module = cell_categories(netdir, library, scaled)
        cells = self.module["cells"]
        self.types = [cells[n]["type"] for n in self.names]
        load = {}
        self.sinks = {}          # net bit -> [(cell index, input pin capacitance)]
        self.clock_pins = []     # (cell index, pin) of every sequential cell's clock
        for k, name in enumerate(self.names):
            cell = library.cells[self.types[k]]
            clk = _clock_pin(cell)
            for pin, bits in cells[name]["connections"].items():
                p = cell.pins.get(pin)
                if p is None or p.direction != "input" or not isinstance(bits[0], int):
                    continue
                if pin == clk:
                    self.clock_pins.append((k, pin))
                    continue
                load[bits[0]] = load.get(bits[0], 0.0) + p.capacitance_ff
                self.sinks.setdefault(bits[0], []).append((k, p.capacitance_ff))
        self.load = load

    def verilog(self):
        return cellsim.netlist_verilog(self.module, self.names)


def _clock_pin(cell):
    st = cell.state
    if st is None or st["kind"] != "ff":
        return None
    toks = re.findall(r"[A-Za-z_]\w*", st["clocked_on"])
    return toks[0] if toks else None


def energy_of(net, counts, in_toggles, cycles, clock_ps):
    """Energy (fJ) by :data:`ENERGY_CATEGORIES` of ``cycles`` cycles with output
    toggles ``counts`` (``{(cell index, pin): n}``) and input-port toggles
    ``in_toggles`` (``{(port, bit): n}``), plus the switching part alone."""
    lib, cells = net.library, net.module["cells"]
    v2 = lib.voltage ** 2
    slew = lib.fo4_slew_ps
    e = dict.fromkeys(ENERGY_CATEGORIES, 0.0)
    switching = 0.0
    net_toggles = {}
    for k, name in enumerate(net.names):
        cell = lib.cells[net.types[k]]
        share = net.categories[k]
        own = 0.0
        for p in cell.outputs:
            bits = cells[name]["connections"].get(p.name)
            if not bits or not isinstance(bits[0], int):
                continue
            n = counts.get((k, p.name), 0)
            net_toggles[bits[0]] = n
            c = net.load.get(bits[0], 0.0)
            sw = n * 0.5 * c * v2
            switching += sw
            own += sw + n * _mean_energy(p.power, slew, c, related="x")
        clk = _clock_pin(cell)
        for p in cell.inputs:
            if p.name == clk:
                # Both clock edges every cycle: the pin's internal energy of a rise and
                # a fall, and C V^2 of the clock net's charge and discharge.
                rise_fall = 2 * _mean_energy(p.power, slew, 0.0, related="")
                e["clock"] += cycles * (rise_fall + p.capacitance_ff * v2)
        if own:
            for cat, s in share.items():
                e[cat] += own * s
        e["leakage"] += cell.leakage_nw * clock_ps * 1e-6 * cycles
    # Nets driven by input ports: their C V^2 / 2 per toggle, booked by the pins they
    # load (a link register's D pin: pipeline registers; a weight-stationary psum_in
    # straight into the PE's adder: the adder's unit).
    ports = net.module["ports"]
    for (port, bit), n in in_toggles.items():
        b = ports[port]["bits"][bit]
        if isinstance(b, int):
            net_toggles[b] = n
            for k, cap in net.sinks.get(b, ()):
                sw = n * 0.5 * cap * v2
                switching += sw
                for cat, share in net.categories[k].items():
                    e[cat] += sw * share
    # Input pins' own (passive) internal energy, per toggle of the net they sit on.
    for k, name in enumerate(net.names):
        cell = lib.cells[net.types[k]]
        clk = _clock_pin(cell)
        passive = 0.0
        for p in cell.inputs:
            if p.name == clk or not p.power:
                continue
            bits = cells[name]["connections"].get(p.name)
            if bits and isinstance(bits[0], int):
                passive += net_toggles.get(bits[0], 0) * _mean_energy(p.power, slew, 0.0,
                                                                      related="")
        if passive:
            for cat, s in net.categories[k].items():
                e[cat] += passive * s
    return e, switching


def switching_power_uniform(net, activity, clock_ps):
    """Switching power (mW) when every net a cell drives toggles ``activity`` times per
    cycle: ``sum(A x C_load x V^2 / 2) / T`` (the convention of OpenSTA's
    ``report_power``, which books a net's switching on its driver; nets driven by input
    ports and the clock are not counted)."""
    v2 = net.library.voltage ** 2
    cells = net.module["cells"]
    driven = set()
    for k, name in enumerate(net.names):
        for p in net.library.cells[net.types[k]].outputs:
            bits = cells[name]["connections"].get(p.name)
            if bits and isinstance(bits[0], int):
                driven.add(bits[0])
    total_c = sum(net.load.get(b, 0.0) for b in driven)
    return activity * 0.5 * total_c * v2 / clock_ps   # fJ / ps = mW


_STA_TOTAL = re.compile(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


def sta_power(net, activity, clock_ps, sta_exe=None):
    """OpenSTA's vectorless ``report_power`` of the netlist at a global ``activity``:
    ``{"internal", "switching", "leakage", "total"}`` in mW."""
    from . import sta
    lib = net.library
    with tempfile.TemporaryDirectory(prefix="nmmx-sta-power-") as tmp:
        Path(tmp, "dut.v").write_text(net.verilog())
        out = sta.run_sta([
            f"read_liberty {liberty_file(lib)}", "read_verilog dut.v", "link_design dut",
            f"create_clock -name clk -period {clock_ps / lib.time_unit_ps:.6g} "
            "[get_ports {clk}]",
            f"set_power_activity -global -activity {activity:g}",
            "report_power -digits 6"], tmp, sta_exe)
    m = _STA_TOTAL.search(out)
    if not m:
        raise sta.StaError(f"OpenSTA's report_power printed no Total row:\n{out[-2000:]}")
    return {k: float(v) * 1e3 for k, v in zip(("internal", "switching", "leakage", "total"),
                                              m.groups())}


# -- the whole flow -----------------------------------------------------------------------------

def energy_cache(root=None):
    """PE energy results under ``root/energy``."""
    return Cache(cache_dir() if root is None else root, name="energy result", version=1,
                 fields={"logic_fj": DictOf(Number), "cycles": int, "valid_cycles": int,
                         "macs": Number, "clock_ps": Number, "period_ps": Number, "library": str,
                         "sim_seconds": Number, "build_seconds": Number, "cells": int},
                 layout=lambda key: f"energy/{key}.json")


def pe_energy(config, library, clock_ps, *, data="gaussian", gemm=None, cycles=DEFAULT_CYCLES,
              seed=0, period_ps=None, mode=None, yosys=None, cache=None):
    """Logic energy of ``config``'s PE over ``cycles`` cycles of one GEMM's stream (a
    unified engine's in ``mode``, :func:`pe_stream`).

    Returns
    -------
    dict
        ``logic_fj`` (category -> fJ over the run), ``cycles``, ``valid_cycles``,
        ``macs`` (dense-equivalent MACs of PE (0, 0) in the run, from the schedule),
        ``clock_ps``, ``library``, ``sim_seconds``, ``build_seconds``, ``cells``.
        ``clock_ps`` is the mapping clock (``abc -D``); leakage is integrated over
        ``period_ps`` per cycle (default ``clock_ps``).
    """
    from golden.config import Dataflow
    netdir = mapped_pe(config, library, clock_ps, yosys=yosys, cache=cache)
    make = pe_stream if config.dataflow == Dataflow.OS else ws_pe_stream
    return _simulated_energy("pe", config, netdir, design_of_config(config), make,
                             library, clock_ps, data=data, gemm=gemm, cycles=cycles,
                             seed=seed, period_ps=period_ps, mode=mode, cache=cache)


def block_end_energy(config, library, clock_ps, *, data="gaussian", gemm=None,
                     cycles=DEFAULT_CYCLES, seed=0, period_ps=None, yosys=None, cache=None):
    """Logic energy of the first block-end unit of column 0 of ``config``'s (MX,
    weight-stationary) array over ``cycles`` cycles of one GEMM
    (:func:`ws_block_end_stream`), as :func:`pe_energy` returns it; ``macs`` are the
    dense-equivalent MACs of the PEs whose partial sums the unit closes (rows
    ``0 .. ws_block_end_rows[0]`` of column 0) in those cycles."""
    from hw.ws_pe import WSBlockEnd
    netdir = mapped_block_end(config, library, clock_ps, yosys=yosys, cache=cache)
    design = WSBlockEnd(config)
    return _simulated_energy("block_end", config, netdir, design, ws_block_end_stream,
                             library, clock_ps, data=data, gemm=gemm, cycles=cycles,
                             seed=seed, period_ps=period_ps, cache=cache)


def _simulated_energy(what, config, netdir, design, make, library, clock_ps, *, data, gemm,
                      cycles, seed, period_ps, cache, mode=None):
    """Simulate the mapped netlist in ``netdir`` on ``make``'s stream (a unified engine's
    in ``mode``); cached."""
    import time
    period_ps = clock_ps if period_ps is None else period_ps
    m, k, n = gemm or (config.m_max, config.k_max, config.n_max)
    ecache = energy_cache(cache)
    src = b"".join(Path(f).read_bytes() for f in (cellsim.__file__, __file__,
                                                   Path(__file__).parents[1] / "golden" /
                                                   "psum.py"))
    key = ecache.digest(json.dumps({
        "what": what, "netlist": Path(netdir).name, "data": data, "gemm": [m, k, n],
        "cycles": cycles, "seed": seed, "clock_ps": clock_ps, "period_ps": period_ps,
        "cellsim": hashlib.sha256(src).hexdigest(), "config": config.to_dict(),
        **({"mode": config.mode(mode).all_modes[0].spec} if config.unified else {})},
        sort_keys=True, default=str))
    hit = ecache.get(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    net = Netlist(netdir, library, config.scaled)
    fields, width = stimulus_fields(design)
    sources = {"cells.v": cellsim.cell_models(library, set(net.types)),
               "dut.v": net.verilog(), "tb.v": cellsim.testbench(fields, width)}
    exe = cellsim.build(sources, Path(netdir) / "sim")
    t1 = time.perf_counter()
    extra = {"mode": mode} if config.unified else {}
    stream, valid = make(config, m, k, n, data=data, seed=seed, cycles=cycles, **extra)
    words = stream_words(fields, stream)
    counts = cellsim.parse_counts(cellsim.run(exe, words, width))
    if not counts:
        raise cellsim.SimError("The gate-level model printed no toggle counts")
    e, _ = energy_of(net, counts, input_toggles(fields, stream), len(words), period_ps)
    # Dense-equivalent MACs per issued group of one PE: useful MACs per multiplier slot
    # issued (cnt_issued counts n_keep slots per group) times n_keep.
    one = config.mode(mode) if config.unified else config
    sched = one.schedule
    per_issue = sched.useful_macs(m, k, n) * one.n_keep / sched.issued(m, k, n)
    out = {"logic_fj": {c: round(v, 4) for c, v in e.items()}, "cycles": len(words),
           "valid_cycles": valid, "macs": valid * per_issue, "clock_ps": clock_ps,
           "period_ps": period_ps,
           "library": library.name, "sim_seconds": round(time.perf_counter() - t1, 3),
           "build_seconds": round(t1 - t0, 3), "cells": len(net.names)}
    ecache.put(key, out)
    return out
