"""The weight-stationary array: folds of K-groups x C :class:`hw.ws_pe.WSPE` with
block-end units (see :mod:`hw.ws`)."""

from amaranth import Module, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from .array import pe_grid
from .pe import ConfigComponent, a_group_layout, flag_names
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
    added to the column's exact sum there (integer addition is associative, so adding it
    late is exact).  The weight load bus of column c enters at row 0 and moves one row
    down per cycle; the PE (and block-end unit) of row ``load.row`` takes it.

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        Build the PEs as :class:`WSPEInstance` references to this module name.

    Members
    -------
    a : In(ArrayLayout(a_group_layout, F))
        Activation group of each row, row r ``config.ws_row_delay(r)`` cycles after the
        activation row's issue.
    ctl : In(ArrayLayout(ws_control_layout, F))
        Row control, aligned with ``a``.
    a_scale : In(ArrayLayout(8, F))
        Activation block scale (MX; used at block-end rows only), aligned with ``a``.
    load : In(ArrayLayout(ws_load_layout, C))
        Weight load bus entering each column.
    acc_in : In(ArrayLayout(ws_state_layout, C))
        Column c's state from the previous pass, joining below row
        ``config.ws_inject_row`` ``config.ws_inject_delay`` cycles after the activation
        row's issue (+c).
    bottom : Out(ArrayLayout(ws_state_layout, C))
        State leaving column c, ``config.ws_bottom_delay`` cycles after the activation
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

        # Horizontal links: activations, control and (block-end rows) the scale.
        for r in range(F):
            a, ctl = self.a[r], self.ctl[r]
            a_scale = self.a_scale[r] if r in ends else None
            for c in range(C):
                pe = pes[r][c]
                m.d.comb += [pe.a.eq(a), pe.ctl.eq(ctl)]
                if r in ends:
                    # The block-end unit sees the row one cycle later, with the PE's sum.
                    unit = units_[r, c]
                    s1 = Signal(cfg.scale_bits, name=f"a_scale_be_{r}_{c}")
                    c1 = Signal(ws_control_layout, name=f"ctl_be_{r}_{c}")
                    m.d.sync += [s1.eq(a_scale), c1.eq(ctl)]
                    m.d.comb += [unit.a_scale.eq(s1), unit.ctl.eq(c1)]
                if c + 1 < C:
                    a_next = Signal.like(pe.a, name=f"a_{r}_{c + 1}")
                    ctl_next = Signal(ws_control_layout, name=f"ctl_{r}_{c + 1}")
                    m.d.sync += [a_next.eq(a), ctl_next.eq(ctl)]
                    a, ctl = a_next, ctl_next
                    if r in ends:
                        s_next = Signal(cfg.scale_bits, name=f"a_scale_{r}_{c + 1}")
                        m.d.sync += s_next.eq(a_scale)
                        a_scale = s_next

        # Vertical links: the weight load bus, the partial sums and the binary32 partial.
        inject = cfg.ws_inject_row
        names = flag_names(cfg)
        for c in range(C):
            bus = self.load[c]
            prev = self.acc_in[c]
            psum = Signal(ws_psum_layout(cfg), name=f"psum_top_{c}")    # zero
            fp = None
            for r in range(F):
                pe = pes[r][c]
                hit = Signal(name=f"ld_hit_{r}_{c}")
                m.d.comb += [hit.eq(bus.valid & (bus.row == r)),
                             pe.ld_en.eq(hit), pe.ld_sel.eq(bus.wsel), pe.ld_w.eq(bus.w),
                             pe.psum_in.eq(psum)]
                psum = pe.psum_out
                if fp is not None:
                    fp_r = Signal(cfg.acc_bits, name=f"fp_{r}_{c}")
                    m.d.sync += fp_r.eq(fp)
                    fp = fp_r
                if r == inject:
                    joined = Signal(ws_psum_layout(cfg), name=f"psum_join_{c}")
                    if not cfg.scaled:
                        m.d.comb += joined.acc.eq(psum.acc + prev.acc)
                    elif cfg.ws_carry_exact:
                        m.d.comb += joined.exact.eq(psum.exact + prev.exact)
                        m.d.comb += [getattr(joined, k).eq(getattr(psum, k) | getattr(prev, k))
                                     for k in names]
                    else:
                        m.d.comb += joined.eq(psum)
                    psum = joined
                    if cfg.scaled:
                        fp = prev.fp
                if r in ends:
                    unit = units_[r, c]
                    m.d.comb += [unit.ld_en.eq(hit), unit.ld_sel.eq(bus.wsel),
                                 unit.ld_scale.eq(bus.scale),
                                 unit.psum_in.eq(psum), unit.fp_in.eq(fp)]
                    psum, fp = unit.psum_out, unit.fp_out
                if r + 1 < F:
                    nxt = Signal(ws_load_layout(cfg), name=f"load_{r + 1}_{c}")
                    m.d.sync += nxt.eq(bus)
                    bus = nxt
            out = self.bottom[c]
            if not cfg.scaled:
                m.d.comb += out.acc.eq(psum.acc)
            else:
                m.d.comb += out.fp.eq(fp)
                if cfg.ws_carry_exact:
                    for k in ws_psum_layout(cfg).members:
                        m.d.comb += getattr(out, k).eq(getattr(psum, k))
        return m
