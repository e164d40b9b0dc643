"""Energy per MAC of a PE from gate-level activity in a real library (issue #14).

The flow (``docs/energy.md`` states the method, assumptions and limits):

1. **Netlist** (:func:`mapped_pe`): the config's PE between the link registers that
   drive it in the array (:class:`synth.timing.Registered`) is mapped into the library
   by :func:`synth.timing.mapping_commands`'s steps, module by module (``synth`` without
   ``-flatten``, ``dfflibmap``, ``abc -D`` at the clock), then flattened, so that every
   cell's name still carries its unit (``$flatten\\unit.\\mul0.``).  Yosys writes the
   netlist (``write_verilog -noattr``) and its JSON.
2. **Attribution** (:func:`cell_categories`): a cell inside a unit counts by the unit
   class's ``area_category``; the PE's own cells by :func:`synth.attribution.cell_owners`
   (a register's declared category, shared cells split evenly), as the area breakdown
   does; the link registers are pipeline registers.
3. **Stimulus** (:func:`pe_stream`): the words PE (0, 0) sees in the output-stationary
   engine for one GEMM of a ``python -m sim`` data class: its A and W buffer words and
   scales from :func:`golden.pack.pack_operands` (bank 0), one group per cycle, tiles in
   the controller's order, control from :data:`hw.pe.control_layout`.
4. **Simulation** (:mod:`synth.cellsim`): Verilator, zero delay, toggles counted by the
   cell models.
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
from dataclasses import replace
from pathlib import Path

import numpy as np

from nmmx.cache import Cache, DictOf, Number

from . import cellsim, nldm
from .area import cache_dir
from .attribution import cell_owners
from .liberty import Liberty
from .timing import Registered, abc_constraints, design_of_config, liberty_file, \
    mapping_commands
from .yosys import run_yosys, yosys_version

__all__ = ["ENERGY_CATEGORIES", "mapped_pe", "cell_categories", "pe_stream", "energy_of",
           "pe_energy", "switching_power_uniform", "sta_power", "Netlist", "DEFAULT_CYCLES", "LABEL"]

#: Keys of the logic breakdown: the area categories of the PE, then clock and leakage.
ENERGY_CATEGORIES = ("sparse_select", "multipliers", "accumulators", "scale_and_convert",
                     "pipeline_registers", "other", "clock", "leakage")
#: Cycles of PE activity simulated by default.
DEFAULT_CYCLES = 10_000
#: What every energy figure is.
LABEL = "zero-delay gate-level activity (no glitches), pin loads only (no wire load)"

_PE_CLASSES = ("PE", "WSPE")


# -- 1. the mapped netlist ------------------------------------------------------------------

def _map_commands(top, clock_ps):
    """:func:`synth.timing.mapping_commands` module by module, then flattened."""
    base = mapping_commands("design.il", "cells.lib", top, clock_ps)
    out = []
    for cmd in base:
        if cmd.startswith("synth -flatten"):
            out.append(f"synth -top {top}")
        elif cmd.startswith("splitnets"):
            continue
        elif cmd.startswith("tee ") or cmd.startswith("write_verilog"):
            continue
        else:
            out.append(cmd)
    return out + ["write_json hier.json", "flatten", "opt_clean -purge", "write_json flat.json",
                  "write_verilog -noattr -noexpr -nohex -nodec netlist.v"]


def energy_design(config):
    """The design simulated: ``config``'s PE with registered inputs (the array's links)."""
    return Registered(design_of_config(config), outputs=False)


def mapped_pe(config, library, clock_ps, *, yosys=None, cache=None):
    """Map ``config``'s PE (:func:`energy_design`) into ``library``; return the directory
    holding ``flat.json``, ``hier.json``, ``netlist.v`` and ``classes.json`` (cached by
    the RTLIL, liberty, clock and commands)."""
    from .rtlil import rtlil_of
    top = "top"
    text, classes = rtlil_of(energy_design(config), top)
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


def cell_categories(netdir, library):
    """Ordered cell names of the flat netlist and, per cell, ``{category: share}``."""
    from hw.component import unit_categories
    flat = json.loads(Path(netdir, "flat.json").read_text())["modules"]["top"]
    hier = json.loads(Path(netdir, "hier.json").read_text())["modules"]
    classes = json.loads(Path(netdir, "classes.json").read_text())
    units = unit_categories()
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
        if cat is None and path and classes.get(".".join(("top",) + path)) in _PE_CLASSES:
            mod = ".".join(("top",) + path)
            if mod not in owners_of:
                owners_of[mod] = cell_owners(hier[mod], alib)
            owners, declared = owners_of[mod]
            cat = {}
            for owner, share in owners.get(local, {"unattributed": 1.0}).items():
                if owner.startswith("sub:"):
                    sub = classes.get(f"{mod}.{owner[4:]}")
                    c = units.get(sub, "pipeline_registers")
                elif owner.startswith("out:") or owner == "unattributed":
                    c = "other"
                else:
                    c = declared.get(owner, "pipeline_registers")
                cat[c] = cat.get(c, 0.0) + share
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


def ws_pe_stream(config, m, k, n, data="gaussian", seed=0, cycles=DEFAULT_CYCLES):
    """The inputs PE (0, 0) of the weight-stationary engine sees for one ``m x k x n``
    GEMM (see :func:`pe_stream`): per weight pass (column tiles outer, folds inner,
    :meth:`golden.schedule.WSSchedule.passes`) ``pass_period(m)`` cycles, the first
    ``m`` carrying activation row i's K-group ``fold * F`` (``F = ws_fold_groups``),
    ``wsel`` the pass's weight register; the next pass's row-0 weights load into the
    other register ``F`` cycles before the pass ends (the first pass's before it
    starts); ``psum_in`` is zero (the top of the column)."""
    from golden.pack import pack_operands
    from hw.ws_pe import ws_control_layout
    from sim.stimulus import make_operands
    enc = make_operands(config, m, k, n, data=data, seed=seed)
    writes = pack_operands(config, enc)
    sched = config.schedule
    f_groups, period = config.ws_fold_groups, sched.pass_period(m)
    folds, tiles_c = sched.folds(k), -(-n // config.cols)
    n_pass = folds * tiles_c
    total = f_groups + n_pass * period
    t = np.arange(min(cycles, total)) - f_groups     # cycle within the passes
    p = np.clip(t // period, 0, n_pass - 1)
    c = t - p * period
    tile, fold = np.divmod(p, folds)
    group = fold * f_groups                          # row 0's K-group of the pass
    valid = (t >= 0) & (c < m) & (group < config.groups(k))
    i = np.clip(c, 0, m - 1)
    a_words, w_words = _bank0_all(writes, "a_data"), _bank0(writes, "w_data")
    a_addr = (i // config.rows) * config.groups_max + group
    a = np.where(valid, [a_words[b][x] for b, x in zip(i % config.rows, a_addr)],
                 np.zeros(len(t), dtype=object))
    # Loads: pass q's weights at cycle (start of q) - F, into register q % 2.
    q = p + 1 + (t < 0) * -1                         # the pass a load in this cycle is for
    load_at = np.where(t < 0, t == -f_groups, c == period - f_groups)
    ld_en = load_at & (q < n_pass)
    qq = np.clip(q, 0, n_pass - 1)
    q_tile, q_fold = np.divmod(qq, folds)
    w_addr = q_tile * config.groups_max + q_fold * f_groups
    ld_w = np.where(ld_en, w_words[np.minimum(w_addr, len(w_words) - 1)],
                    np.zeros(len(t), dtype=object))
    f = {name: ws_control_layout[name].offset for name in ("valid", "wsel", "bend")}
    bend = 0 in config.ws_block_end_rows
    ctl = (valid.astype(np.int64) << f["valid"]) | ((p % 2).astype(np.int64) << f["wsel"]) | \
        ((valid & bend).astype(np.int64) << f["bend"])
    zero = np.zeros(len(t), dtype=object)
    out = {"a": a, "ctl": ctl.astype(object), "ld_en": ld_en.astype(object),
           "ld_sel": (qq % 2).astype(object), "ld_w": ld_w, "psum_in": zero}
    return out, int(valid.sum())


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

    def __init__(self, netdir, library):
        self.library = library
        self.names, self.categories, self.module = cell_categories(netdir, library)
        cells = self.module["cells"]
        self.types = [cells[n]["type"] for n in self.names]
        load = {}
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
    # Input pins' own (passive) internal energy, per toggle of the net they sit on.
    ports = net.module["ports"]
    for (port, bit), n in in_toggles.items():
        b = ports[port]["bits"][bit]
        if isinstance(b, int):
            net_toggles[b] = n
            sw = n * 0.5 * net.load.get(b, 0.0) * v2
            switching += sw
            e["pipeline_registers"] += sw
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
    import time
    from golden.config import Dataflow
    period_ps = clock_ps if period_ps is None else period_ps
    m, k, n = gemm or (config.m_max, config.k_max, config.n_max)
    netdir = mapped_pe(config, library, clock_ps, yosys=yosys, cache=cache)
    ecache = energy_cache(cache)
    key = ecache.digest(json.dumps({
        "netlist": Path(netdir).name, "data": data, "gemm": [m, k, n], "cycles": cycles,
        "seed": seed, "clock_ps": clock_ps, "period_ps": period_ps, "cellsim": hashlib.sha256(
            Path(cellsim.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest(),
        "config": config.to_dict(), **({"mode": config.mode(mode).all_modes[0].spec}
                                        if config.unified else {})}, sort_keys=True,
        default=str))
    hit = ecache.get(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    net = Netlist(netdir, library)
    fields, width = stimulus_fields(design_of_config(config))
    sources = {"cells.v": cellsim.cell_models(library, set(net.types)),
               "dut.v": net.verilog(), "tb.v": cellsim.testbench(fields, width)}
    exe = cellsim.build(sources, Path(netdir) / "sim")
    t1 = time.perf_counter()
    make = pe_stream if config.dataflow == Dataflow.OS else ws_pe_stream
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
