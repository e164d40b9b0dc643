"""The weight-stationary array: folds of K-groups x C :class:`hw.ws_pe.WSPE` with
block-end units (see :mod:`hw.ws`)."""

from amaranth import Module, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from .adder import prefix_add
from .array import pe_grid
from .chain import link_chains, register_chain
from .pe import ConfigComponent, a_group_layout, delayed, flag_names
from .ws_pe import (WSPE, WSPEInstance, WSBlockEnd, ws_control_layout, ws_load_layout,
                    ws_psum_layout, ws_state_layout)

__all__ = ["WSArray"]


class WSArray(ConfigComponent):
    """``ws_fold_groups`` x C weight-stationary PEs with block-end units.

    Row r holds K-group r of the current pass; activation groups (with the row control
    and, at block-end rows, the activation block scale) enter PE(r, 0) and move one PE
    right per cycle.  Partial sums start from zero at PE(0, c) and move down one PE per
    cycle, through a :class:`WSBlockEnd` below each row of
    ``config.ws_block_end_rows``.  The state a column carries from the previous pass
    joins below row ``config.ws_inject_row``: the binary32 partial starts there and then
    travels beside the exact sums, and a carried exact partial block (or the int8 sum) is
    added to the column's exact sum there in a registered join
    (``config.ws_join_stages``; integer addition is associative, so adding it late is
    exact).  The weight load bus of column c enters at row 0 and moves one row
    down per cycle; the PE (and block-end unit) of row ``load.row`` takes it.

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        Build the PEs as :class:`WSPEInstance` references to this module name.

    Members
    -------
    a : In(ArrayLayout(a_group_layout, F))
        Activation group of each row, row r ``config.schedule.row_delay(r)`` cycles after the
        activation row's issue.
    ctl : In(ArrayLayout(ws_control_layout, F))
        Row control, aligned with ``a``.
    a_scale : In(ArrayLayout(8, F))
        Activation block scale (MX; used at block-end rows only), aligned with ``a``.
    load : In(ArrayLayout(ws_load_layout, C))
        Weight load bus entering each column.
    acc_in : In(ArrayLayout(ws_state_layout, C))
        Column c's state from the previous pass, joining below row
        ``config.ws_inject_row`` ``config.schedule.inject_delay`` cycles after the activation
        row's issue (+c).
    bottom : Out(ArrayLayout(ws_state_layout, C))
        State leaving column c, ``config.schedule.bottom_delay`` cycles after the activation
        row's issue (+c).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    """

    def __init__(self, config, *, pe_module=None):
        self._pe_module = pe_module
        F, C = config.ws_fold_groups, config.cols
        members = {
            "a": In(data.ArrayLayout(a_group_layout(config), F)),
            "ctl": In(data.ArrayLayout(ws_control_layout, F)),
            "load": In(data.ArrayLayout(ws_load_layout(config), C)),
            "acc_in": In(data.ArrayLayout(ws_state_layout(config), C)),
            "bottom": Out(data.ArrayLayout(ws_state_layout(config), C)),
        }
        if config.scaled:
            members["a_scale"] = In(data.ArrayLayout(config.scale_bits, F))
        super().__init__(config, members)

    def elaborate(self, platform):
        cfg = self._config
        F, C = cfg.ws_fold_groups, cfg.cols
        ends = set(cfg.ws_block_end_rows)
        m = Module()
        pes = pe_grid(cfg, F, C, self._pe_module, WSPE, WSPEInstance)
        units_ = {}
        for r in range(F):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                if r in ends:
                    units_[r, c] = WSBlockEnd(cfg)
                    m.submodules[f"block_end_{r}_{c}"] = units_[r, c]
        for r in range(F):
            self._row_links(m, r, pes[r], [units_.get((r, c)) for c in range(C)])
        for c in range(C):
            self._column(m, c, [pes[r][c] for r in range(F)],
                         [units_.get((r, c)) for r in range(F)])
        return m

    def _row_links(self, m, r, pes, units_):
        """Row ``r``'s horizontal links: activations, control and (block-end rows) the
        activation scale, one register per PE; a block-end unit sees the row
        ``config.ws_pe_latency`` cycles after its PE (plus ``config.ws_join_stages``
        below the injection row), together with the PE's sum."""
        cfg = self._config
        ports = ["a", "ctl"] + (["a_scale"] if units_[0] is not None else [])
        for c, v in enumerate(link_chains(m, self, ports, r, cfg.cols,
                                          lambda p, c: f"{p}_{r}_{c}")):
            m.d.comb += [pes[c].a.eq(v["a"]), pes[c].ctl.eq(v["ctl"])]
            if units_[c] is not None:
                lag = cfg.ws_pe_latency + (cfg.ws_join_stages if r == cfg.ws_inject_row
                                           else 0)
                s1 = delayed(m, v["a_scale"], lag, f"a_scale_be_{r}_{c}")
                c1 = delayed(m, v["ctl"], lag, f"ctl_be_{r}_{c}")
                m.d.comb += [units_[c].a_scale.eq(s1), units_[c].ctl.eq(c1)]

    def _column(self, m, c, pes, units_):
        """Column ``c``'s vertical links: the weight load bus (one register per row), the
        exact partial sums through the PEs and block-end units, the binary32 partial
        (one register per row below the injection row), and the injected state."""
        cfg = self._config
        prev = self.acc_in[c]
        psum = Signal(ws_psum_layout(cfg), name=f"psum_top_{c}")    # zero
        fp = None
        buses = register_chain(m, self.load[c], cfg.ws_fold_groups,
                               lambda r: f"load_{r}_{c}")
        for r, (pe, unit, bus) in enumerate(zip(pes, units_, buses)):
            hit = Signal(name=f"ld_hit_{r}_{c}")
            m.d.comb += [hit.eq(bus.valid & (bus.row == r)),
                         pe.ld_en.eq(hit), pe.ld_sel.eq(bus.wsel), pe.ld_w.eq(bus.w),
                         pe.psum_in.eq(psum)]
            psum = pe.psum_out
            if fp is not None:
                fp_r = Signal(cfg.acc_bits, name=f"fp_{r}_{c}")
                m.d.sync += fp_r.eq(fp)
                fp = fp_r
            if r == cfg.ws_inject_row:
                psum = self._join(m, c, psum, prev)
                if cfg.scaled:
                    fp = delayed(m, prev.fp, cfg.ws_join_stages, f"fp_join_{c}")
            if unit is not None:
                m.d.comb += [unit.ld_en.eq(hit), unit.ld_sel.eq(bus.wsel),
                             unit.ld_scale.eq(bus.scale),
                             unit.psum_in.eq(psum), unit.fp_in.eq(fp)]
                psum, fp = unit.psum_out, unit.fp_out
        out = self.bottom[c]
        if not cfg.scaled:
            m.d.comb += out.acc.eq(psum.acc)
        else:
            m.d.comb += out.fp.eq(fp)
            if cfg.ws_carry_exact:
                for k in ws_psum_layout(cfg).members:
                    m.d.comb += getattr(out, k).eq(getattr(psum, k))

    def _join(self, m, c, psum, prev):
        """The column's exact sum with the previous pass's carried state added (int8: the
        int32 sum; MX: the exact partial block and its flags, when blocks span passes),
        registered (``config.ws_join_stages``): the join's prefix adder starts from the
        PE's psum register and the state read, and ends in a register, so it is never
        in series with the next adder or the block-end unit's converter."""
        cfg = self._config
        if not cfg.ws_join_stages:
            return psum
        assert cfg.ws_join_stages == 1, "one registered prefix adder"
        joined = Signal(ws_psum_layout(cfg), name=f"psum_join_{c}")
        if not cfg.scaled:
            m.d.sync += joined.acc.eq(prefix_add(psum.acc, prev.acc, cfg.acc_bits, m=m))
        else:
            m.d.sync += joined.exact.eq(prefix_add(psum.exact, prev.exact,
                                                   cfg.block_acc_bits, m=m))
            m.d.sync += [getattr(joined, k).eq(getattr(psum, k) | getattr(prev, k))
                         for k in flag_names(cfg)]
        return joined
