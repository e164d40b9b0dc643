"""The weight-stationary (``dataflow="ws"``) engine; its PE and array live in
:mod:`hw.ws_pe` and :mod:`hw.ws_array` (re-exported here).

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
from amaranth import Module, Signal, Mux, Cat, Const, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from .engine import EngineBase, host_buffers, skew_chain
from .ws_array import WSArray
from .ws_pe import (WSPE, WSPEInstance, WSBlockEnd, ws_control_layout, ws_load_layout,
                    ws_psum_layout, ws_state_layout)

__all__ = ["WSPE", "WSPEInstance", "WSBlockEnd", "WSArray", "WSEngine",
           "ws_control_layout", "ws_psum_layout", "ws_state_layout", "ws_load_layout"]


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
