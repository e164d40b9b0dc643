"""Area and energy per access of the engine's buffers, by bank size and shape.

A buffer is ``banks`` identical banks of ``depth`` words of ``width`` bits (the geometry
is :attr:`golden.Config.host_buffers`, plus the weight-stationary accumulator memory of
``hw.ws.WSEngine.buffers``).  Each bank becomes either an SRAM macro or a flip-flop
array, whichever is smaller:

SRAM macro (CACTI 7, 45 nm; ``synth/data/memory_cacti45.json``, made by
``tools/cacti_fit.py``)::

    area = bits * CELL / efficiency(bits, width, ports)
    read, write energy per word = width * e(bits, width, ports)

``CELL`` is CACTI's 6T bit-cell, 146 F^2 at F = 45 nm (0.296 um^2, 0.370 GE).  CACTI
reports a whole macro, so its periphery (decoders, wordline drivers, sense amplifiers,
write drivers, control) is inside the efficiency; the table stores, for every point of
the calibration grid (capacity 512 b .. 512 kb, word 8 .. 128 b, port sets ``1rw`` and
``1r1w``), the efficiency and the energies per word bit.  Between grid points the model
interpolates linearly in log2(bits) and log2(width) on log values; outside the grid it
holds the nearest edge's energy per bit and, above it, efficiency; below the smallest
macro of a width the area stays at that macro's (the periphery is a floor).  A four-term analytic fit
(cells + rows + columns + fixed periphery) missed CACTI by up to 35% in area and 65% in
energy, because CACTI's optimizer changes the subarray organisation (Ndwl, Ndbl, Nspd)
in steps, so the table is the model; it reproduces its own points exactly and the test
pins that within 10%.

Flip-flop array (priced from ``synth/cells.lib``, like the logic)::

    area = bits * (DFF + MUX2) + width * (depth - 1) * MUX2 + depth * (log2 depth) * AND2
           + width * DFF

a DFF with a load-enable mux per bit, a depth-to-1 mux tree per output bit, a write
address decoder and the registered read port.  At about 7-8 GE per bit it beats an
SRAM macro only where the macro's periphery dominates: :func:`ff_threshold_bits` is
that crossover for a word width (:meth:`MemoryModel.bank` takes the smaller), so the threshold is not a chosen constant but where
the two area models meet.  A flip-flop bank's energy per access is taken from the
SRAM fit at the same geometry (``energy_source`` says so): ``cells.lib`` carries no
power data; the gate-level energy flow (issue #14) will price it from a real library.

Everything here is pure Python and numpy, deterministic, and reads the table once.
"""

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["NODE_NM", "NAND2_UM2", "CELL_GE", "PORT_SETS", "DATA_PATH", "MemoryModel", "fit",
           "model_json", "load_model", "buffer_report", "gemm_energy", "ENGINE_PORTS"]

#: Technology node of the calibration (CACTI 7's 45 nm ITRS-HP tables).
NODE_NM = 45
#: Area of one NAND2 gate equivalent at that node: NAND2_X1 of the NanGate FreePDK45
#: Open Cell Library, 0.798 um^2.  CACTI's mm^2 divided by this is GE.
NAND2_UM2 = 0.798
#: Port sets of the calibration: one read/write port, or one read and one write port.
PORT_SETS = ("1rw", "1r1w")
#: The engine's buffers have one write port (host or result drain) and one read port
#: (array or host), used in the same cycle: two-port banks.
ENGINE_PORTS = "1r1w"
#: The committed calibration table.
DATA_PATH = Path(__file__).with_name("data") / "memory_cacti45.json"
#: Name of the model in reports.
MODEL_NAME = "cacti7-45nm"

#: CACTI's SRAM bit cell at the node: 146 F^2 (``tech_params/45nm.dat``, ``-area_cell``).
CELL_GE = 146 * (NODE_NM / 1000) ** 2 / NAND2_UM2


def fit(points):
    """The model table of CACTI points (dicts with ``bits``, ``width``, ``ports``,
    ``area_mm2``, ``read_nj``, ``write_nj``, ``leak_mw``): port set -> word width (str)
    -> rows ``[bits, efficiency, read pJ per bit, write pJ per bit, leakage uW per bit]``
    sorted by bits."""
    out = {}
    for p in sorted(points, key=lambda p: (p["ports"], p["width"], p["bits"])):
        area_ge = p["area_mm2"] * 1e6 / NAND2_UM2
        row = [p["bits"], p["bits"] * CELL_GE / area_ge, p["read_nj"] * 1e3 / p["width"],
               p["write_nj"] * 1e3 / p["width"], p["leak_mw"] * 1e3 / p["bits"]]
        out.setdefault(p["ports"], {}).setdefault(str(p["width"]), []).append(
            [float(f"{v:.6g}") for v in row])
    return out


def model_json(table, points, skipped=()):
    """The committed table: provenance, the model table and the raw CACTI points."""
    return json.dumps({
        "model": MODEL_NAME,
        "source": "CACTI 7 (hwcomponents-cacti 1.0.40 source, built with make), "
                  "scratchpad RAM, one UCA bank, itrs-hp cells and periphery, 300 K, "
                  "area-optimal organisation; made by tools/cacti_fit.py",
        "node_nm": NODE_NM,
        "nand2_um2": NAND2_UM2,
        "nand2_source": "NanGate FreePDK45 Open Cell Library, NAND2_X1",
        "cell_ge": round(CELL_GE, 6),
        "columns": ["bits", "efficiency", "read_pj_per_bit", "write_pj_per_bit",
                    "leak_uw_per_bit"],
        "table": table,
        "points": points,
        "skipped": [list(s) for s in skipped],
    }, indent=1, sort_keys=True) + "\n"


def _interp_log(x, xs, ys):
    """Linear interpolation of log(ys) over log2(xs), held at the ends."""
    return float(np.exp(np.interp(np.log2(x), np.log2(xs), np.log(ys))))


class MemoryModel:
    """The fitted SRAM model plus the flip-flop array model; see the module docstring.

    Parameters
    ----------
    table : dict
        The parsed calibration table (:data:`DATA_PATH`).
    liberty : synth.liberty.Liberty
        Cell areas of the flip-flop array (default ``synth/cells.lib``).
    """

    def __init__(self, table, liberty=None):
        from synth.liberty import Liberty
        self.table = table
        self._rows = {ports: {int(w): np.array(rows, dtype=float) for w, rows in by_w.items()}
                      for ports, by_w in table["table"].items()}
        lib = Liberty.read() if liberty is None else liberty
        self._dff, self._mux, self._and = (lib.area[c] for c in ("DFF", "MUX2", "AND2"))

    @property
    def name(self):
        return self.table["model"]

    def _check(self, bits, width, ports):
        if ports not in self._rows:
            raise ValueError(f"The memory model has no port set {ports!r}; it has "
                             f"{', '.join(sorted(self._rows))}")
        if not (width >= 1 and bits >= width):
            raise ValueError(f"A memory bank needs width >= 1 and bits >= width, not "
                             f"{bits} bits of width {width}")

    def _value(self, col, bits, width, ports):
        """Column ``col`` of the table at (bits, width): interpolated along bits within
        each grid width, then between the two nearest widths along log2(width).  The
        area column (1) is interpolated as area, not efficiency, and below a width's
        smallest macro it stays at that macro's area: a macro has a periphery floor."""
        self._check(bits, width, ports)
        rows = self._rows[ports]
        at = []
        for w in sorted(rows):
            r = rows[w]
            if col == 1:
                area = r[:, 0] * CELL_GE / r[:, 1]
                at.append((w, _interp_log(max(bits, r[0, 0]), r[:, 0], area)))
            else:
                at.append((w, _interp_log(bits, r[:, 0], r[:, col])))
        return _interp_log(width, [w for w, _ in at], [v for _, v in at])

    def sram_ge(self, bits, width, ports=ENGINE_PORTS):
        """Area of one SRAM bank in GE: ``bits * CELL_GE / efficiency``."""
        return self._value(1, bits, width, ports)

    def efficiency(self, bits, width, ports=ENGINE_PORTS):
        """Bit-cell area over macro area of one SRAM bank."""
        return bits * CELL_GE / self.sram_ge(bits, width, ports)

    def read_pj(self, bits, width, ports=ENGINE_PORTS):
        """Dynamic energy of reading one word of an SRAM bank, pJ."""
        return width * self._value(2, bits, width, ports)

    def write_pj(self, bits, width, ports=ENGINE_PORTS):
        """Dynamic energy of writing one word of an SRAM bank, pJ."""
        return width * self._value(3, bits, width, ports)

    def ff_ge(self, depth, width):
        """Area of one flip-flop array of ``depth`` words of ``width`` bits, GE."""
        sel = math.ceil(math.log2(depth)) if depth > 1 else 0
        return (depth * width * (self._dff + self._mux) + width * (depth - 1) * self._mux
                + depth * sel * self._and + width * self._dff)

    def ff_threshold_bits(self, width, ports=ENGINE_PORTS):
        """Largest bank (bits, a whole number of words) of this width for which a
        flip-flop array is smaller than the SRAM macro; 0 if none is."""
        depth = 1
        while depth <= 1 << 20 and self.ff_ge(depth, width) < self.sram_ge(depth * width,
                                                                           width, ports):
            depth += 1
        return (depth - 1) * width

    def bank(self, depth, width, ports=ENGINE_PORTS):
        """One bank: ``kind`` (``sram`` or ``ff``), ``ge``, ``read_pj``, ``write_pj``."""
        bits = depth * width
        sram, ff = self.sram_ge(bits, width, ports), self.ff_ge(depth, width)
        return {"kind": "ff" if ff < sram else "sram", "ge": min(sram, ff),
                "read_pj": self.read_pj(bits, width, ports),
                "write_pj": self.write_pj(bits, width, ports),
                "energy_source": "sram fit"}


@lru_cache(maxsize=None)
def _load(path):
    return MemoryModel(json.loads(Path(path).read_text()))


def load_model(path=DATA_PATH):
    """The model of the committed table (read once per path)."""
    return _load(str(path))


def buffer_report(buffers, flat_ge_per_bit, model=None, ports=ENGINE_PORTS):
    """Per-buffer area and energy per access of an engine's buffers.

    Parameters
    ----------
    buffers : dict
        Buffer name -> ``(banks, depth, width)`` (``Engine.buffers()``).
    flat_ge_per_bit : float
        The old flat price, reported beside the model for one release.
    model : MemoryModel or None
        Default :func:`load_model`.

    Returns
    -------
    dict
        ``buffer_model`` (name and parameters), ``buffer_ge`` (model), ``buffer_ge_flat``,
        ``buffers`` (name -> banks, depth, width, bits, kind, ge, ge_flat, ge per bank,
        read_pj and write_pj per word access).
    """
    model = load_model() if model is None else model
    per = {}
    for name, (banks, depth, width) in buffers.items():
        b = model.bank(depth, width, ports)
        bits = banks * depth * width
        per[name] = {"banks": banks, "depth": depth, "width": width, "bits": bits,
                     "kind": b["kind"], "bank_ge": round(b["ge"], 2),
                     "ge": round(banks * b["ge"], 2),
                     "ge_flat": round(bits * flat_ge_per_bit, 2),
                     "read_pj": round(b["read_pj"], 4), "write_pj": round(b["write_pj"], 4),
                     "energy_source": b["energy_source"]}
    t = model.table
    return {
        "buffer_model": {"name": model.name, "node_nm": t["node_nm"],
                         "nand2_um2": t["nand2_um2"], "ports": ports,
                         "table": DATA_PATH.relative_to(DATA_PATH.parent.parent.parent).as_posix(),
                         "flat_ge_per_bit": flat_ge_per_bit},
        "buffer_ge": round(sum(p["ge"] for p in per.values()), 2),
        "buffer_ge_flat": round(sum(p["ge_flat"] for p in per.values()), 2),
        "buffers": per,
    }


def gemm_energy(buffers, accesses, model=None, ports=ENGINE_PORTS):
    """Buffer energy of one GEMM: each buffer's word accesses priced at its bank's
    energy per access (:meth:`MemoryModel.bank`).  Leakage is not included.

    Parameters
    ----------
    buffers : dict
        Buffer name -> ``(banks, depth, width)`` (``Engine.buffers_of(config)``).
    accesses : dict
        Buffer name -> ``{"reads": ..., "writes": ...}`` in words of one bank (what
        :meth:`golden.schedule.Schedule.buffer_accesses` gives, or the RTL counters);
        every buffer of ``buffers`` must be there.
    model : MemoryModel or None
        Default :func:`load_model`.

    Returns
    -------
    dict
        ``model`` (the memory model's name), ``node_nm``, ``ports``, ``pj`` (the total)
        and ``buffers``: name -> reads, writes, read_pj and write_pj per word, pj.
    """
    model = load_model() if model is None else model
    if set(accesses) != set(buffers):
        raise ValueError(f"The accesses name buffers {sorted(accesses)}, but the engine "
                         f"has {sorted(buffers)}")
    per = {}
    for name, (_banks, depth, width) in buffers.items():
        b, acc = model.bank(depth, width, ports), accesses[name]
        pj = acc["reads"] * b["read_pj"] + acc["writes"] * b["write_pj"]
        per[name] = {"reads": int(acc["reads"]), "writes": int(acc["writes"]),
                     "read_pj": round(b["read_pj"], 4), "write_pj": round(b["write_pj"], 4),
                     "pj": round(pj, 3)}
    return {"model": model.name, "node_nm": model.table["node_nm"], "ports": ports,
            "pj": round(sum(p["pj"] for p in per.values()), 3), "buffers": per}
