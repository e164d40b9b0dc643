"""The R x C output-stationary systolic array and its per-column drain chains."""

from amaranth import Module, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from .chain import link_chains
from .component import WORD_CATEGORY
from .multi_pe import MultiPE, MultiPEInstance
from .pe import ConfigComponent, PE, PEInstance, a_group_layout, w_group_layout, control_layout

__all__ = ["Array", "pe_grid"]


def pe_grid(config, rows, cols, pe_module, pe_cls, reference_cls):
    """``rows`` x ``cols`` PEs, indexed ``[r][c]``, not yet added to a module.

    Parameters
    ----------
    config : golden.Config
    rows, cols : int
    pe_module : str or None
        ``None``: full ``pe_cls(config)`` components (the Python simulator's mode);
        otherwise ``reference_cls(config, pe_module)`` references to a PE module of that
        name emitted separately (the generator's mode).
    pe_cls, reference_cls : type
        The PE class and its :class:`hw.pe.ModuleReference` subclass.
    """
    if pe_module is None:
        make = lambda: pe_cls(config)
    else:
        make = lambda: reference_cls(config, pe_module)
    return [[make() for _ in range(cols)] for _ in range(rows)]


class Array(ConfigComponent):
    """R x C grid of :class:`hw.pe.PE`: activations flow right, weights flow down.

    Row r's activation group, its block scale and the group control enter PE(r, 0) and
    move one PE to the right per cycle; column c's weight slots and scale enter PE(0, c)
    and move one PE down per cycle.  The caller skews the inputs (row r and column c
    start r and c cycles late) so that PE(r, c) sees matching groups.

    Each PE keeps its finished tile result in its result register.  When the bottom PE
    of a column publishes a tile (the last of the column to do so, because of the
    skew), the column loads all R results into a shift chain that then emits one result
    per cycle, bottom row first, on ``drain_data[c]``; the PEs meanwhile already
    accumulate the next tile, so draining never stalls the array as long as tiles are
    at least R cycles apart.

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        When given, the PEs are :class:`hw.pe.PEInstance` references to a PE module of
        that name emitted separately (the generator's mode); otherwise full :class:`PE`
        components (the Python simulator's mode).

    Members
    -------
    a : In(ArrayLayout(a_group_layout, R))
        Activation group entering each row.
    a_scale : In(ArrayLayout(8, R))
        E8M0 scale entering each row (MX only).
    ctl : In(ArrayLayout(control_layout, R))
        Group control entering each row (travels with the activations).
    w : In(ArrayLayout(w_group_layout, C))
        Weight slots entering each column.
    w_scale : In(ArrayLayout(8, C))
        E8M0 scale entering each column (MX only).
    drain_load : Out(C)
        Bit c is high in the cycle column c's chain loads a tile's R results; the chain
        emits them on the next R cycles.
    drain_data : Out(ArrayLayout(32, C))
        Bottom of each column's chain: row R-1's result in the first cycle after the
        load, then R-2, ..., 0.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Latency: PE(r, c) sees a row-r/column-c input r + c cycles after it enters; a tile's
    ``drain_load[c]`` is high ``R - 1 + c + config.pe_latency`` cycles after its last
    group entered row 0 (with zero row/column skew at the inputs).
    """

    def __init__(self, config, *, pe_module=None):
        self._pe_module = pe_module
        R, C = config.rows, config.cols
        members = {
            "a": In(data.ArrayLayout(a_group_layout(config), R)),
            "ctl": In(data.ArrayLayout(control_layout, R)),
            "w": In(data.ArrayLayout(w_group_layout(config), C)),
            "drain_load": Out(C),
            "drain_data": Out(data.ArrayLayout(config.acc_bits, C)),
        }
        if config.scaled:
            members["a_scale"] = In(data.ArrayLayout(config.scale_bits, R))
            members["w_scale"] = In(data.ArrayLayout(config.scale_bits, C))
        if config.unified:    # several modes: every PE is a hw.multi_pe.MultiPE
            members["mode"] = In(config.mode_enum)
        super().__init__(config, members)

    def elaborate(self, platform):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        m = Module()
        classes = (MultiPE, MultiPEInstance) if cfg.unified else (PE, PEInstance)
        pes = pe_grid(cfg, R, C, self._pe_module, *classes)
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                if cfg.unified:   # the mode changes only between GEMMs: a broadcast
                    m.d.comb += pes[r][c].mode.eq(self.mode)

        # Horizontal links (activations, their scale, the control) and vertical links
        # (weight slots, their scale): one register per PE.
        row_ports = ["a", "ctl"] + (["a_scale"] if cfg.scaled else [])
        col_ports = ["w"] + (["w_scale"] if cfg.scaled else [])
        for r in range(R):
            links = link_chains(m, self, row_ports, r, C, lambda p, c: f"{p}_{r}_{c}")
            for c, values in enumerate(links):
                m.d.comb += [getattr(pes[r][c], p).eq(v) for p, v in values.items()]
        for c in range(C):
            # A weight link holds a W data word: its index fields are the PE's metadata.
            links = link_chains(m, self, col_ports, c, R, lambda p, r: f"{p}_{r}_{c}",
                                categories={"w": WORD_CATEGORY})
            for r, values in enumerate(links):
                m.d.comb += [getattr(pes[r][c], p).eq(v) for p, v in values.items()]

        # Drain chains: load on the bottom PE's publish, otherwise shift down by one.
        for c in range(C):
            load = pes[R - 1][c].result_valid
            chain = [Signal(cfg.acc_bits, name=f"drain_{r}_{c}") for r in range(R)]
            with m.If(load):
                m.d.sync += [chain[r].eq(pes[r][c].result) for r in range(R)]
            with m.Else():
                m.d.sync += [chain[r].eq(chain[r - 1]) for r in range(1, R)]
            m.d.comb += [self.drain_load[c].eq(load), self.drain_data[c].eq(chain[R - 1])]
        return m
