"""The weight-stationary (``dataflow="ws"``) PE, array and engine.

Each PE holds the N stored weight slots (values and indices) of one K-group for one
output column, in two registers: the active pass uses one while the next pass's weights
load into the other.  Activation groups flow right along a row, exact fixed-point partial
sums flow down a column.  Below every row where an MX block ends sits a block-end unit:
it scales the exact block sum by the two E8M0 scales, rounds it once to binary32 and
adds it to the binary32 partial that flows down beside the exact one, in K order, exactly
as the golden contract says.  The state leaving the bottom of a column (binary32
partial, plus the exact partial block sum when a block spans several passes; int8: the
int32 sum) goes to a per-column accumulator memory and joins the column again in the
next pass of the same column tile, below the first block-end row (where the binary32
partial starts; int8: at the bottom), so that a pass need not wait for the previous one
to drain; after the last pass it is the C element.

The schedule, latencies and cycle model are the ``ws_*`` members of
:class:`golden.Config`.  The engine has the ports, buffers, word layouts and counters of
the output-stationary :class:`hw.engine.Engine`, so the same host code drives both.
"""

from amaranth import Module, Signal, Mux, Cat, Const, unsigned, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import units
from .array import pe_grid
from .engine import EngineBase, host_buffers, skew_chain
from .pe import (ConfigComponent, ModuleReference, a_group_layout, any_of, flag_names,
                 sparse_products, w_group_layout)

__all__ = ["WSPE", "WSPEInstance", "WSBlockEnd", "WSArray", "WSEngine",
           "ws_control_layout", "ws_psum_layout", "ws_state_layout", "ws_load_layout"]


#: Per-row control that travels right with the activations.
ws_control_layout = data.StructLayout({
    "valid": 1,     # an activation row whose K-group exists is present
    "wsel": 1,      # which of the two weight registers this pass uses
    "bend": 1,      # a block ends below this row: convert and accumulate it
})


def ws_psum_layout(config):
    """The exact partial sum flowing down a column: the exact block partial and its
    special-value flags (MX), or the wrapping int32 sum (int8)."""
    if not config.scaled:
        return data.StructLayout({"acc": signed(config.acc_bits)})
    fields = {"exact": signed(config.block_acc_bits)}
    fields.update({k: 1 for k in flag_names(config)})
    return data.StructLayout(fields)


def ws_state_layout(config):
    """What a column hands from one pass to the next: the binary32 partial (MX), plus
    the exact partial block and flags when blocks span passes; int8: the int32 sum."""
    if not config.scaled:
        return ws_psum_layout(config)
    fields = {"fp": config.acc_bits}
    if config.ws_carry_exact:
        fields.update(ws_psum_layout(config).members)
    return data.StructLayout(fields)


def ws_load_layout(config):
    """The weight-load bus of one column: one K-group's slots for one target row."""
    fields = {
        "valid": 1,
        "row": unsigned(max(1, (config.ws_fold_groups - 1).bit_length())),
        "wsel": 1,
        "w": w_group_layout(config),
    }
    if config.scaled:
        fields["scale"] = config.scale_bits
    return data.StructLayout(fields)


def ws_pe_signature(config):
    """The ports of :class:`WSPE` (shared by :class:`WSPEInstance`)."""
    return wiring.Signature({
        "a": In(a_group_layout(config)),
        "ctl": In(ws_control_layout),
        "ld_en": In(1),
        "ld_sel": In(1),
        "ld_w": In(w_group_layout(config)),
        "psum_in": In(ws_psum_layout(config)),
        "psum_out": Out(ws_psum_layout(config)),
    })


class WSPE(ConfigComponent):
    """Weight-stationary processing element: N stationary weight slots, sparse select,
    N exact multipliers and the exact partial-sum adder.

    Parameters
    ----------
    config : golden.Config

    Members
    -------
    a : In(a_group_layout(config))
        Activation group of this PE's K-group for the activation row passing by.
    ctl : In(ws_control_layout)
        ``valid`` (add this row's products), ``wsel`` (weight register in use).
    ld_en, ld_sel : In(1)
        Write ``ld_w`` into weight register ``ld_sel`` at the end of this cycle.
    ld_w : In(w_group_layout(config))
        Stored weight slots (value and index) of the PE's K-group and column.
    psum_in : In(ws_psum_layout(config))
        Exact partial sum from the PE above.
    psum_out : Out(ws_psum_layout(config))
        ``psum_in`` plus this PE's products (flags ORed), registered.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Latency and throughput: one activation row per cycle; ``psum_out`` holds the result
    for the inputs of the previous cycle (latency 1).  A weight register written in
    cycle t is in use from cycle t+1.
    """

    def __init__(self, config):
        super().__init__(config, ws_pe_signature(config))

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # Two weight registers: the running pass reads one, the next pass loads the other.
        # Values and indices are kept apart so that the area report can count the index
        # registers (the PE's N:M metadata) with the sparse select.
        n, wb = cfg.n_keep, cfg.w_fmt.bits
        vals = [Signal(n * wb, name=f"weight_value{p}") for p in range(2)]
        ld_vals = Cat(*(self.ld_w[s].value for s in range(n)))
        for p in range(2):
            with m.If(self.ld_en & (self.ld_sel == p)):
                m.d.sync += vals[p].eq(ld_vals)
        val = Mux(self.ctl.wsel, vals[1], vals[0])
        w = Signal(w_group_layout(cfg), name="w_active")
        for s in range(n):
            m.d.comb += w[s].value.eq(val[s * wb:(s + 1) * wb])
        if not cfg.dense:
            ib = cfg.index_bits
            metas = [Signal(n * ib, name=f"weight_meta{p}") for p in range(2)]
            ld_metas = Cat(*(self.ld_w[s].index for s in range(n)))
            for p in range(2):
                with m.If(self.ld_en & (self.ld_sel == p)):
                    m.d.sync += metas[p].eq(ld_metas)
            meta = Mux(self.ctl.wsel, metas[1], metas[0])
            for s in range(n):
                m.d.comb += w[s].index.eq(meta[s * ib:(s + 1) * ib])

        total, flags = sparse_products(m, cfg, self.a, w)
        names = list(flags)
        valid = self.ctl.valid
        if not cfg.scaled:
            m.d.sync += self.psum_out.acc.eq(self.psum_in.acc + Mux(valid, total, 0))
            return m
        m.d.sync += self.psum_out.exact.eq(self.psum_in.exact + Mux(valid, total, 0))
        for k in names:
            m.d.sync += getattr(self.psum_out, k).eq(
                getattr(self.psum_in, k) | (valid & any_of(flags[k])))
        return m


class WSPEInstance(ModuleReference):
    """A reference to a separately emitted :class:`WSPE` module (see
    :class:`hw.pe.PEInstance`; the generator's mode)."""

    def __init__(self, config, module_name):
        super().__init__(config, module_name, ws_pe_signature(config))


class WSBlockEnd(ConfigComponent):
    """Block-end unit below a weight-stationary row where an MX block ends.

    When ``ctl.bend`` is set, the exact block sum is scaled by the activation row's and
    the weight column's E8M0 scales and rounded once to binary32
    (:class:`hw.units.BlockConverter`), added to the binary32 partial
    (:class:`hw.units.Float32Adder`, partial + term, so terms add in K order), and the
    exact partial and flags restart from zero; otherwise everything passes unchanged.

    Parameters
    ----------
    config : golden.Config
        An MX configuration.

    Members
    -------
    psum_in : In(ws_psum_layout(config))
        Exact partial sum from the PE above (its registered output).
    fp_in : In(32)
        binary32 partial, aligned with ``psum_in``.
    a_scale : In(8)
        E8M0 scale of the activation row's block, aligned with ``psum_in``.
    ctl : In(ws_control_layout)
        ``bend`` and ``wsel`` of the row above, aligned with ``psum_in``.
    ld_en, ld_sel, ld_scale : In
        Write the weight column's E8M0 block scale into scale register ``ld_sel``.
    psum_out : Out(ws_psum_layout(config))
    fp_out : Out(32)

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``config`` is an ``int8`` configuration.

    Latency: ``config.ws_block_end_latency`` (2: convert, add) cycles; one row per cycle.
    """

    @classmethod
    def validate(cls, config):
        super().validate(config)
        if not config.scaled:
            raise ValueError(f"WSBlockEnd needs an MX configuration, not "
                             f"a_format={config.a_format} with w_format={config.w_format}")

    def __init__(self, config):
        super().__init__(config, {
            "psum_in": In(ws_psum_layout(config)),
            "fp_in": In(config.acc_bits),
            "a_scale": In(config.scale_bits),
            "ctl": In(ws_control_layout),
            "ld_en": In(1),
            "ld_sel": In(1),
            "ld_scale": In(config.scale_bits),
            "psum_out": Out(ws_psum_layout(config)),
            "fp_out": Out(config.acc_bits),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        names = flag_names(cfg)
        scales = [Signal(cfg.scale_bits, name=f"w_scale{p}") for p in range(2)]
        with m.If(self.ld_en):
            with m.If(self.ld_sel):
                m.d.sync += scales[1].eq(self.ld_scale)
            with m.Else():
                m.d.sync += scales[0].eq(self.ld_scale)

        m.submodules.convert = conv = units.BlockConverter(cfg)
        m.d.comb += [conv.sum.eq(self.psum_in.exact), conv.a_scale.eq(self.a_scale),
                     conv.w_scale.eq(Mux(self.ctl.wsel, scales[1], scales[0]))]
        m.d.comb += [getattr(conv, k).eq(getattr(self.psum_in, k)) for k in names]

        # Stage 1: the rounded block term; the exact partial restarts after a block end.
        bend = self.ctl.bend
        term = Signal(cfg.acc_bits, name="term")
        fp1 = Signal(cfg.acc_bits, name="fp1")
        en1 = Signal(name="en1")
        psum1 = Signal(ws_psum_layout(cfg), name="psum1")
        m.d.sync += [term.eq(conv.result), fp1.eq(self.fp_in), en1.eq(bend),
                     psum1.exact.eq(Mux(bend, 0, self.psum_in.exact))]
        m.d.sync += [getattr(psum1, k).eq(~bend & getattr(self.psum_in, k)) for k in names]

        # Stage 2: binary32 accumulation, partial + term.
        m.submodules.add = add = units.Float32Adder()
        m.d.comb += [add.a.eq(fp1), add.b.eq(term)]
        m.d.sync += [self.fp_out.eq(Mux(en1, add.sum, fp1)), self.psum_out.eq(psum1)]
        return m


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


class WSEngine(EngineBase):
    """Self-contained N:M-sparse MX GEMM engine, weight stationary: the generated top.

    Same ports, host buffers, word layouts, counters and C layout as
    :class:`hw.engine.Engine` (see there and ``docs/architecture.md``), plus one internal
    accumulator memory per column (``buffers()["acc"]``: ``m_max`` words of
    :func:`ws_state_layout`).  Between ``start`` and ``done`` the
    controller runs weight passes, column tiles outer and folds of
    ``config.ws_fold_groups`` K-groups inner.  A pass streams activation rows
    ``0 .. m-1`` (one per cycle, row r of the array reading K-group ``fold*F + r`` of the
    row r cycles after row 0) and lasts ``config.ws_pass_period(m)`` cycles; the next
    pass's weights load into the PEs' second weight registers during the last
    ``ws_fold_groups`` cycles of the current pass.  Each column's accumulator memory
    carries the state of every activation row from pass to pass; the last pass of a
    column tile writes C.

    Array row r reads A bank ``i mod R`` for activation row i; because the pass period
    is a multiple of R, the rows always read distinct banks, through a rotating
    crossbar.

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        Build the array from :class:`WSPEInstance` references to this module name.

    Members
    -------
    See :class:`hw.engine.Engine`.  ``cnt_tiles`` counts weight passes.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Timing is exactly ``config.cycles(m, k, n)`` busy cycles (``config.ws_cycles``).
    """

    def buffers(self):
        """Describe the on-chip buffers: name -> (banks, depth, word bits); the host
        buffers of :func:`hw.engine.host_buffers` plus the accumulator memories."""
        out = host_buffers(self.config)
        out["acc"] = (self.config.cols, self.config.ws_acc_depth,
                      ws_state_layout(self.config).size)
        return out

    def elaborate(self, platform):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        F, M, bs, gpb = cfg.ws_fold_groups, cfg.m_group, cfg.block_size, cfg.groups_per_block
        Gmax, Bmax, NTmax = cfg.groups_max, cfg.blocks_max, cfg.n_tiles_max
        ends = cfg.ws_block_end_rows
        carry = cfg.ws_carry_exact
        m = Module()
        m.submodules.array = array = WSArray(cfg, pe_module=self._pe_module)

        a_rd, w_rd, as_rd, ws_rd = self.operand_memories(m)

        # -- controller state -------------------------------------------------------------
        busy, done = self.status(m)
        pro, flushing = Signal(), Signal()     # loading pass 0's weights / all issued
        m_r, k_r, n_r = Signal(cfg.m_bits), Signal(cfg.k_bits), Signal(cfg.n_bits)
        kpad = Signal(range(cfg.kp_max + 1))
        max_period = cfg.ws_pass_period(cfg.m_max)
        period = Signal(range(max_period + 1))
        o = Signal(range(max_period + 1))       # issue slot of the pass (activation row)
        orow = Signal(range(max(R, 2)))         # o mod R: the A bank of the row
        a_ibase = Signal(range(cfg.a_data_depth + Gmax + 1))    # (o div R) * Gmax
        as_ibase = Signal(range(cfg.m_tiles_max * Bmax + Bmax + 1))   # (o div R) * Bmax
        c_ptr = Signal(range(max_period * NTmax + NTmax + 1))  # o * NTmax + column tile

        desc = data.StructLayout({
            "exists": 1, "parity": 1,
            "j0": unsigned((cfg.n_max + C).bit_length()),
            "jt": unsigned(max(1, NTmax.bit_length())),
            "w_base": unsigned((cfg.w_data_depth + Gmax).bit_length()),
            "ws_base": unsigned((cfg.n_tiles_max * Bmax + Bmax).bit_length()),
            "g0": unsigned((Gmax + F).bit_length()),
            "gpos": unsigned(gpb.bit_length()),
            "b0": unsigned((Bmax + F).bit_length()),
            "kb0": unsigned((cfg.kp_max + F * M).bit_length()),
        })
        cur, ld = Signal(desc, name="cur"), Signal(desc, name="ld")

        def ends_block(d):
            # Only when a block spans passes does a pass end inside one.
            return (d.gpos + F == gpb) if carry else Const(1, 1)

        def fold_last(d):
            return d.kb0 + F * M >= kpad

        def advance(dst, d):
            """``dst`` <= the pass after ``d``."""
            m.d.sync += dst.parity.eq(~d.parity)
            with m.If(fold_last(d)):
                with m.If(d.j0 + C >= n_r):
                    m.d.sync += dst.exists.eq(0)
                with m.Else():
                    m.d.sync += [dst.exists.eq(1), dst.j0.eq(d.j0 + C), dst.jt.eq(d.jt + 1),
                                 dst.w_base.eq(d.w_base + Gmax),
                                 dst.ws_base.eq(d.ws_base + Bmax),
                                 dst.g0.eq(0), dst.gpos.eq(0), dst.b0.eq(0), dst.kb0.eq(0)]
            with m.Else():
                m.d.sync += [dst.exists.eq(1), dst.j0.eq(d.j0), dst.jt.eq(d.jt),
                             dst.w_base.eq(d.w_base), dst.ws_base.eq(d.ws_base),
                             dst.g0.eq(d.g0 + F), dst.kb0.eq(d.kb0 + F * M)]
                if carry:
                    eb = ends_block(d)
                    m.d.sync += [dst.gpos.eq(Mux(eb, 0, d.gpos + F)),
                                 dst.b0.eq(d.b0 + eb)]
                else:
                    m.d.sync += [dst.gpos.eq(0), dst.b0.eq(d.b0 + F // gpb)]

        running = busy & ~pro & ~flushing
        issue = Signal()
        m.d.comb += issue.eq(running & (o < m_r))
        cnt = self.counters(m, busy, issue)
        cnt_issued, cnt_tiles = cnt["cnt_issued"], cnt["cnt_tiles"]
        cols_left = Signal(range(cfg.n_max + 1))
        cv = Signal(range(C + 1))
        groups_left = Signal(range(cfg.groups_max + 1))
        rvc = Signal(range(F + 1))
        m.d.comb += [
            cols_left.eq(n_r - cur.j0), cv.eq(Mux(cols_left >= C, C, cols_left)),
            groups_left.eq((kpad - cur.kb0) >> cfg.log2_m_group),
            rvc.eq(Mux(groups_left >= F, F, groups_left)),
        ]

        def start_pass():
            m.d.sync += [cur.eq(ld), o.eq(0), orow.eq(0), a_ibase.eq(0), as_ibase.eq(0),
                         c_ptr.eq(ld.jt), cnt_tiles.eq(cnt_tiles + 1)]
            advance(ld, ld)

        with m.If(issue):
            m.d.sync += cnt_issued.eq(cnt_issued + rvc * cv * cfg.n_keep)
        with m.If(busy & pro):
            m.d.sync += o.eq(o + 1)
            with m.If(o == F - 1):
                m.d.sync += pro.eq(0)
                start_pass()
        with m.Elif(running):
            m.d.sync += [o.eq(o + 1), orow.eq(Mux(orow == R - 1, 0, orow + 1)),
                         c_ptr.eq(c_ptr + NTmax)]
            with m.If(orow == R - 1):
                m.d.sync += [a_ibase.eq(a_ibase + Gmax), as_ibase.eq(as_ibase + Bmax)]
            with m.If(o == period - 1):
                with m.If(ld.exists):
                    start_pass()
                with m.Else():
                    m.d.sync += flushing.eq(1)

        with m.If(self.start & ~busy):
            # The pass period rounds max(m, ws_min_pass) up to a multiple of R, and K is
            # padded to whole blocks: both divide by constants, once per GEMM.
            mx = Mux(self.m > cfg.ws_min_pass, self.m, cfg.ws_min_pass)
            m.d.sync += [
                busy.eq(1), done.eq(0), pro.eq(1), flushing.eq(0),
                m_r.eq(self.m), k_r.eq(self.k), n_r.eq(self.n),
                period.eq((mx + (R - 1)) // R * R),
                kpad.eq((self.k + (bs - 1)) // bs * bs),
                o.eq(0),
                ld.eq(0), ld.exists.eq(1),
                *(reg.eq(0) for reg in cnt.values()),
            ]

        # -- weight loading: row F-1 first, so that every row's word arrives together ----
        loading = Signal()
        lrow = Signal(range(max_period + 1))
        m.d.comb += [
            loading.eq(busy & (pro | (running & ld.exists & (o + F >= period)))),
            lrow.eq(Mux(pro, F - 1 - o, period - 1 - o)),
        ]
        load_stage = data.StructLayout({
            "valid": 1, "row": unsigned(ws_load_layout(cfg).members["row"].width),
            "wsel": 1, "w_addr": unsigned(len(ld.w_base)), "ws_addr": unsigned(len(ld.ws_base))})
        col0 = Signal(load_stage)
        m.d.comb += [
            col0.valid.eq(loading & (ld.kb0 + (lrow << cfg.log2_m_group) < kpad)),
            col0.row.eq(lrow), col0.wsel.eq(ld.parity),
            col0.w_addr.eq(ld.w_base + ld.g0 + lrow),
            col0.ws_addr.eq(ld.ws_base + ld.b0 + (lrow // gpb if not carry else 0)),
        ]
        for c, stage in enumerate(skew_chain(m, col0, C, "load_skew")):
            m.d.comb += w_rd[c].addr.eq(stage.w_addr)
            bus = array.load[c]
            late = Signal(load_stage, name=f"load_rd_{c}")   # waits for the buffer read
            m.d.sync += late.eq(stage)
            m.d.comb += [bus.valid.eq(late.valid), bus.row.eq(late.row),
                         bus.wsel.eq(late.wsel), bus.w.eq(w_rd[c].data)]
            if cfg.scaled:
                m.d.comb += [ws_rd[c].addr.eq(stage.ws_addr), bus.scale.eq(ws_rd[c].data)]

        # -- activation rows: address skew, rotating bank crossbar, block-end delays ------
        row_stage = data.StructLayout({
            "valid": 1, "bank": unsigned(len(orow)), "a_addr": unsigned(len(a_ibase) + 1),
            "as_addr": unsigned(len(as_ibase) + 1), "kb0": unsigned(len(cur.kb0)),
            "wsel": 1, "bend": 1})
        row0 = Signal(row_stage)
        m.d.comb += [
            row0.valid.eq(issue), row0.bank.eq(orow),
            row0.a_addr.eq(a_ibase + cur.g0), row0.as_addr.eq(as_ibase + cur.b0),
            row0.kb0.eq(cur.kb0), row0.wsel.eq(cur.parity), row0.bend.eq(ends_block(cur)),
        ]
        rows = []
        for r, stage in enumerate(skew_chain(m, row0, F, "row_skew")):
            valid = Signal(name=f"row_valid_{r}")
            m.d.comb += valid.eq(stage.valid & (stage.kb0 + r * M < kpad))
            rows.append((stage, valid))

        def crossbar(ports, users, addr_of):
            """Drive each bank's address from the row that reads it this cycle."""
            for b, port in enumerate(ports):
                addr = Const(0, len(port.addr))
                for r in users:
                    st, valid = rows[r]
                    addr = Mux(valid & (st.bank == b), addr_of(r, st), addr)
                m.d.comb += port.addr.eq(addr)

        crossbar(a_rd, range(F), lambda r, st: st.a_addr + r)
        if cfg.scaled:
            crossbar(as_rd, ends, lambda r, st: st.as_addr + r // gpb)

        def delayed(value, n, name):
            return list(skew_chain(m, value, n + 1, name))[-1]

        for r in range(F):
            st, valid = rows[r]
            sel = Signal(len(orow), name=f"row_bank_{r}")
            m.d.sync += sel.eq(st.bank)
            extra = cfg.ws_row_delay(r) - cfg.buffer_read_latency - r
            a_word = Signal(cfg.a_group_bits, name=f"row_a_{r}")
            m.d.comb += a_word.eq(Cat(*(p.data for p in a_rd)).word_select(sel, cfg.a_group_bits))
            m.d.comb += array.a[r].eq(delayed(a_word, extra, f"row_a_{r}"))
            ctl = Signal(ws_control_layout, name=f"row_ctl_{r}")
            is_end = r in ends
            m.d.sync += [ctl.valid.eq(valid), ctl.wsel.eq(st.wsel),
                         ctl.bend.eq(valid & st.bend if is_end else 0)]
            m.d.comb += array.ctl[r].eq(delayed(ctl, extra, f"row_ctl_{r}"))
            if cfg.scaled:
                if is_end:
                    s_word = Signal(cfg.scale_bits, name=f"row_scale_{r}")
                    m.d.comb += s_word.eq(Cat(*(p.data for p in as_rd)).word_select(sel, cfg.scale_bits))
                    m.d.comb += array.a_scale[r].eq(delayed(s_word, extra, f"row_scale_{r}"))
                else:
                    m.d.comb += array.a_scale[r].eq(0)

        # -- top and bottom of the columns: accumulator memories and the C buffer ---------
        item_layout = data.StructLayout({
            "valid": 1, "i": unsigned(max(1, (cfg.m_max - 1).bit_length())),
            "first": 1, "last": 1, "c_addr": unsigned(cfg.rd_addr_bits),
            "cv": unsigned(len(cv)), "fin": 1})
        item0 = Signal(item_layout)
        m.d.comb += [
            item0.valid.eq(issue), item0.i.eq(o), item0.first.eq(cur.g0 == 0),
            item0.last.eq(fold_last(cur)), item0.c_addr.eq(c_ptr), item0.cv.eq(cv),
            item0.fin.eq(issue & ~ld.exists & (o == m_r - 1)),
        ]
        bottom, inject = cfg.ws_bottom_delay, cfg.ws_inject_delay
        line = list(skew_chain(m, item0, bottom + C, "col_item"))
        state_bits = ws_state_layout(cfg).size
        c_rd = []
        for c in range(C):
            acc = Memory(shape=unsigned(state_bits), depth=cfg.ws_acc_depth, init=[])
            m.submodules[f"acc_{c}"] = acc
            # Read one cycle before the state joins the column; the first fold of a
            # column tile starts from zero (+0.0) instead.
            rp = acc.read_port()
            m.d.comb += rp.addr.eq(line[inject + c - 1].i)
            first = line[inject + c].first
            m.d.comb += array.acc_in[c].eq(Mux(first, 0, rp.data))
            it = line[bottom + c]
            wp = acc.write_port()
            m.d.comb += [wp.en.eq(it.valid), wp.addr.eq(it.i),
                         wp.data.eq(array.bottom[c].as_value())]
            result = array.bottom[c].fp if cfg.scaled else array.bottom[c].acc
            c_rd.append(self.c_lane(m, c, it.valid & it.last & (it.cv > c), it.c_addr, result))
        m.d.comb += self.rd_data.eq(Cat(*c_rd))

        # The last column writes the last row of the last pass: the GEMM is complete.
        with m.If(line[bottom + C - 1].fin):
            m.d.sync += [busy.eq(0), done.eq(1), flushing.eq(0)]
        return m
