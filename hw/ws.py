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
from types import SimpleNamespace

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
    row r cycles after row 0) and lasts ``config.schedule.pass_period(m)`` cycles; the next
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
    See :class:`hw.engine.Engine`.  ``cnt_tiles`` counts weight passes.  The buffer
    reads count where the ports read: an array row's A bank (and, below a block-end row
    in a pass that ends a block, its A scale bank) when the row's stage is valid; a
    column's W bank when it loads a weight row (its W scale bank when that row is a
    block-end row of a pass that ends a block).  Besides ``cnt_wr_c``, ``cnt_rd_acc`` /
    ``cnt_wr_acc`` count the accumulator memories' reads (rows joining a pass after a
    column tile's first fold) and writes (rows leaving the bottom).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Timing is exactly ``config.schedule.cycles(m, k, n)`` busy cycles
    (:class:`golden.schedule.WSSchedule`).
    """

    @classmethod
    def buffers_of(cls, config):
        """The on-chip buffers: name -> (banks, depth, word bits); the host buffers of
        :func:`hw.engine.host_buffers` plus the accumulator memories."""
        out = host_buffers(config)
        out["acc"] = (config.cols, config.ws_acc_depth, ws_state_layout(config).size)
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = WSArray(self._config, pe_module=self._pe_module)
        a_rd, w_rd, as_rd, ws_rd = self.operand_memories(m)
        rc = self.run_control(m)
        s = self._pass_state(m, rc)
        self._pass_controller(m, rc, s)
        self._weight_load(m, rc, s, array, w_rd, ws_rd)
        self._activation_rows(m, rc, s, array, a_rd, as_rd)
        fin = self._column_state(m, rc, s, array)
        # The last column writes the last row of the last pass: the GEMM is complete.
        rc.complete(fin, s.flushing.eq(0))
        return m

    def _pass_state(self, m, rc):
        """The pass controller's registers (the running pass ``cur`` and the next one
        ``ld`` as pass descriptors) and the values derived from them; adds the counters
        (``rc.count``).  Returns them as a namespace."""
        cfg = self._config
        R, C, F, M = cfg.rows, cfg.cols, cfg.ws_fold_groups, cfg.m_group
        Gmax, Bmax, NTmax = cfg.groups_max, cfg.blocks_max, cfg.n_tiles_max
        s = SimpleNamespace(busy=rc.busy)
        s.pro, s.flushing = Signal(), Signal(name="flushing")  # pass 0 weights / all issued
        s.m_r, s.k_r, s.n_r = Signal(cfg.m_bits), Signal(cfg.k_bits), Signal(cfg.n_bits)
        s.kpad = Signal(range(cfg.kp_max + 1), name="kpad")
        max_period = cfg.schedule.pass_period(cfg.m_max)
        s.period = Signal(range(max_period + 1), name="period")
        s.o = Signal(range(max_period + 1), name="o")     # issue slot (activation row)
        s.orow = Signal(range(max(R, 2)), name="orow")    # o mod R: the A bank of the row
        s.a_ibase = Signal(range(cfg.a_data_depth + Gmax + 1), name="a_ibase")  # (o/R)*Gmax
        s.as_ibase = Signal(range(cfg.m_tiles_max * Bmax + Bmax + 1), name="as_ibase")
        s.c_ptr = Signal(range(max_period * NTmax + NTmax + 1), name="c_ptr")  # o*NTmax + jt
        desc = data.StructLayout({
            "exists": 1, "parity": 1,
            "j0": unsigned((cfg.n_max + C).bit_length()),
            "jt": unsigned(max(1, NTmax.bit_length())),
            "w_base": unsigned((cfg.w_data_depth + Gmax).bit_length()),
            "ws_base": unsigned((cfg.n_tiles_max * Bmax + Bmax).bit_length()),
            "g0": unsigned((Gmax + F).bit_length()),
            "gpos": unsigned(cfg.groups_per_block.bit_length()),
            "b0": unsigned((Bmax + F).bit_length()),
            "kb0": unsigned((cfg.kp_max + F * M).bit_length()),
        })
        s.cur, s.ld = Signal(desc, name="cur"), Signal(desc, name="ld")
        s.running = rc.busy & ~s.pro & ~s.flushing
        s.issue = Signal(name="issue")
        m.d.comb += s.issue.eq(s.running & (s.o < s.m_r))
        rc.count(s.issue)
        cols_left = Signal(range(cfg.n_max + 1), name="cols_left")
        s.cv = Signal(range(C + 1), name="cv")
        groups_left = Signal(range(cfg.groups_max + 1), name="groups_left")
        s.rvc = Signal(range(F + 1), name="rvc")
        m.d.comb += [
            cols_left.eq(s.n_r - s.cur.j0), s.cv.eq(Mux(cols_left >= C, C, cols_left)),
            groups_left.eq((s.kpad - s.cur.kb0) >> cfg.log2_m_group),
            s.rvc.eq(Mux(groups_left >= F, F, groups_left)),
        ]
        return s

    def _ends_block(self, d):
        """Pass ``d`` ends an MX block (only when a block spans passes can it not)."""
        cfg = self._config
        if cfg.ws_carry_exact:
            return d.gpos + cfg.ws_fold_groups == cfg.groups_per_block
        return Const(1, 1)

    def _fold_last(self, s, d):
        """Pass ``d`` is the last fold of its column tile."""
        return d.kb0 + self._config.ws_fold_groups * self._config.m_group >= s.kpad

    def _advance(self, m, s, dst, d):
        """``dst`` <= the pass after ``d`` (folds inner, column tiles outer)."""
        cfg = self._config
        F, M, C, gpb = cfg.ws_fold_groups, cfg.m_group, cfg.cols, cfg.groups_per_block
        Gmax, Bmax = cfg.groups_max, cfg.blocks_max
        m.d.sync += dst.parity.eq(~d.parity)
        with m.If(self._fold_last(s, d)):
            with m.If(d.j0 + C >= s.n_r):
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
            if cfg.ws_carry_exact:
                eb = self._ends_block(d)
                m.d.sync += [dst.gpos.eq(Mux(eb, 0, d.gpos + F)), dst.b0.eq(d.b0 + eb)]
            else:
                m.d.sync += [dst.gpos.eq(0), dst.b0.eq(d.b0 + F // gpb)]

    def _pass_controller(self, m, rc, s):
        """Weight passes: a prologue loads pass 0's weights, then each pass issues
        activation rows ``0 .. m-1`` over ``period`` cycles and starts the next."""
        cfg = self._config
        R, F, NTmax = cfg.rows, cfg.ws_fold_groups, cfg.n_tiles_max
        Gmax, Bmax, bs = cfg.groups_max, cfg.blocks_max, cfg.block_size
        cnt_issued, cnt_tiles = rc.cnt["cnt_issued"], rc.cnt["cnt_tiles"]

        def start_pass():
            m.d.sync += [s.cur.eq(s.ld), s.o.eq(0), s.orow.eq(0), s.a_ibase.eq(0),
                         s.as_ibase.eq(0), s.c_ptr.eq(s.ld.jt), cnt_tiles.eq(cnt_tiles + 1)]
            self._advance(m, s, s.ld, s.ld)

        with m.If(s.issue):
            m.d.sync += cnt_issued.eq(cnt_issued + s.rvc * s.cv * cfg.n_keep)
        with m.If(rc.busy & s.pro):
            m.d.sync += s.o.eq(s.o + 1)
            with m.If(s.o == F - 1):
                m.d.sync += s.pro.eq(0)
                start_pass()
        with m.Elif(s.running):
            m.d.sync += [s.o.eq(s.o + 1), s.orow.eq(Mux(s.orow == R - 1, 0, s.orow + 1)),
                         s.c_ptr.eq(s.c_ptr + NTmax)]
            with m.If(s.orow == R - 1):
                m.d.sync += [s.a_ibase.eq(s.a_ibase + Gmax), s.as_ibase.eq(s.as_ibase + Bmax)]
            with m.If(s.o == s.period - 1):
                with m.If(s.ld.exists):
                    start_pass()
                with m.Else():
                    m.d.sync += s.flushing.eq(1)
        # The pass period rounds max(m, min_pass) up to a multiple of R, and K is
        # padded to whole blocks: both divide by constants, once per GEMM.
        mx = Mux(self.m > cfg.schedule.min_pass, self.m, cfg.schedule.min_pass)
        rc.on_start(
            s.pro.eq(1), s.flushing.eq(0),
            s.m_r.eq(self.m), s.k_r.eq(self.k), s.n_r.eq(self.n),
            s.period.eq((mx + (R - 1)) // R * R),
            s.kpad.eq((self.k + (bs - 1)) // bs * bs),
            s.o.eq(0),
            s.ld.eq(0), s.ld.exists.eq(1))

    def _weight_load(self, m, rc, s, array, w_rd, ws_rd):
        """The next pass's weights (and W scales) load during the last F cycles of the
        current pass (or the prologue), row F-1 first, so that every row's word arrives
        together over the pipelined per-column bus."""
        cfg = self._config
        F, gpb = cfg.ws_fold_groups, cfg.groups_per_block
        ld = s.ld
        loading = Signal(name="loading")
        lrow = Signal(range(cfg.schedule.pass_period(cfg.m_max) + 1), name="lrow")
        m.d.comb += [
            loading.eq(s.busy & (s.pro | (s.running & ld.exists & (s.o + F >= s.period)))),
            lrow.eq(Mux(s.pro, F - 1 - s.o, s.period - 1 - s.o)),
        ]
        load_stage = data.StructLayout({
            "valid": 1, "row": unsigned(ws_load_layout(cfg).members["row"].width),
            "wsel": 1, "w_addr": unsigned(len(ld.w_base)),
            "ws_addr": unsigned(len(ld.ws_base)), "scale_rd": 1})
        col0 = Signal(load_stage, name="col0")
        # The W scale is used by the block-end unit of its row, when the pass ends a block.
        end_row = Cat(*(lrow == r for r in cfg.ws_block_end_rows)).any()
        m.d.comb += [
            col0.valid.eq(loading & (ld.kb0 + (lrow << cfg.log2_m_group) < s.kpad)),
            col0.row.eq(lrow), col0.wsel.eq(ld.parity),
            col0.w_addr.eq(ld.w_base + ld.g0 + lrow),
            col0.ws_addr.eq(ld.ws_base + ld.b0
                            + (lrow // gpb if not cfg.ws_carry_exact else 0)),
            col0.scale_rd.eq(col0.valid & end_row & self._ends_block(ld)),
        ]
        stages = list(skew_chain(m, col0, cfg.cols, "load_skew"))
        lates = []
        for c, stage in enumerate(stages):
            m.d.comb += w_rd[c].addr.eq(stage.w_addr)
            bus = array.load[c]
            late = Signal(load_stage, name=f"load_rd_{c}")   # waits for the buffer read
            lates.append(late)
            m.d.sync += late.eq(stage)
            m.d.comb += [bus.valid.eq(late.valid), bus.row.eq(late.row),
                         bus.wsel.eq(late.wsel), bus.w.eq(w_rd[c].data)]
            if cfg.scaled:
                m.d.comb += [ws_rd[c].addr.eq(stage.ws_addr), bus.scale.eq(ws_rd[c].data)]
        # A read is counted when its data arrives (the registered stage), one cycle after
        # its address: the load condition's compare chain then ends at a register instead
        # of running on into the 48-bit counter's add (46.8 FO4 in OSU018 at 8x8 int8).
        # The last weight read comes long before the run's last C write, so the totals
        # read after ``done`` are the same.
        rc.count_access("cnt_rd_w", [late.valid for late in lates])
        if cfg.scaled:
            rc.count_access("cnt_rd_ws", [late.scale_rd for late in lates])

    def _row_skew(self, m, s):
        """The activation row's read addresses and control through the row skew chain;
        returns ``(stage, valid)`` of each array row."""
        cfg = self._config
        row_stage = data.StructLayout({
            "valid": 1, "bank": unsigned(len(s.orow)), "a_addr": unsigned(len(s.a_ibase) + 1),
            "as_addr": unsigned(len(s.as_ibase) + 1), "kb0": unsigned(len(s.cur.kb0)),
            "wsel": 1, "bend": 1})
        row0 = Signal(row_stage, name="row0")
        m.d.comb += [
            row0.valid.eq(s.issue), row0.bank.eq(s.orow),
            row0.a_addr.eq(s.a_ibase + s.cur.g0), row0.as_addr.eq(s.as_ibase + s.cur.b0),
            row0.kb0.eq(s.cur.kb0), row0.wsel.eq(s.cur.parity),
            row0.bend.eq(self._ends_block(s.cur)),
        ]
        rows = []
        for r, stage in enumerate(skew_chain(m, row0, cfg.ws_fold_groups, "row_skew")):
            valid = Signal(name=f"row_valid_{r}")
            m.d.comb += valid.eq(stage.valid & (stage.kb0 + r * cfg.m_group < s.kpad))
            rows.append((stage, valid))
        return rows

    @staticmethod
    def _bank_addresses(m, rows, ports, users, addr_of):
        """Address side of the rotating bank crossbar: each bank's address comes from
        the row (of ``users``) that reads it this cycle."""
        for b, port in enumerate(ports):
            addr = Const(0, len(port.addr))
            for r in users:
                st, valid = rows[r]
                addr = Mux(valid & (st.bank == b), addr_of(r, st), addr)
            m.d.comb += port.addr.eq(addr)

    @staticmethod
    def _bank_view(ports, width):
        """Data side of the crossbar: the banks' read data as an array indexed by bank."""
        return data.View(data.ArrayLayout(unsigned(width), len(ports)),
                         Cat(*(p.data for p in ports)))

    def _activation_rows(self, m, rc, s, array, a_rd, as_rd):
        """Array row r reads K-group ``fold*F + r`` of the activation row through the
        crossbar, ``schedule.row_delay(r)`` cycles after its issue (block-end delays added)."""
        cfg = self._config
        ends = cfg.ws_block_end_rows
        rows = self._row_skew(m, s)
        rc.count_access("cnt_rd_a", [valid for _st, valid in rows])
        if cfg.scaled:
            rc.count_access("cnt_rd_as", [rows[r][1] & rows[r][0].bend for r in ends])
        self._bank_addresses(m, rows, a_rd, range(cfg.ws_fold_groups),
                             lambda r, st: st.a_addr + r)
        if cfg.scaled:
            self._bank_addresses(m, rows, as_rd, ends,
                                 lambda r, st: st.as_addr + r // cfg.groups_per_block)
        a_banks = self._bank_view(a_rd, cfg.a_group_bits)

        def delayed(value, n, name):
            return list(skew_chain(m, value, n + 1, name))[-1]

        for r, (st, valid) in enumerate(rows):
            sel = Signal(len(s.orow), name=f"row_bank_{r}")
            m.d.sync += sel.eq(st.bank)
            extra = cfg.schedule.row_delay(r) - cfg.buffer_read_latency - r
            a_word = Signal(cfg.a_group_bits, name=f"row_a_{r}")
            m.d.comb += a_word.eq(a_banks[sel])
            m.d.comb += array.a[r].eq(delayed(a_word, extra, f"row_a_{r}"))
            ctl = Signal(ws_control_layout, name=f"row_ctl_{r}")
            is_end = r in ends
            m.d.sync += [ctl.valid.eq(valid), ctl.wsel.eq(st.wsel),
                         ctl.bend.eq(valid & st.bend if is_end else 0)]
            m.d.comb += array.ctl[r].eq(delayed(ctl, extra, f"row_ctl_{r}"))
            if cfg.scaled and is_end:
                s_word = Signal(cfg.scale_bits, name=f"row_scale_{r}")
                m.d.comb += s_word.eq(self._bank_view(as_rd, cfg.scale_bits)[sel])
                m.d.comb += array.a_scale[r].eq(delayed(s_word, extra, f"row_scale_{r}"))
            elif cfg.scaled:
                m.d.comb += array.a_scale[r].eq(0)

    def _column_state(self, m, rc, s, array):
        """Top and bottom of the columns: each column's accumulator memory carries the
        state of every activation row between passes; the last fold writes C.  Returns
        the completion condition (the last column's last write)."""
        cfg = self._config
        C = cfg.cols
        item_layout = data.StructLayout({
            "valid": 1, "i": unsigned(max(1, (cfg.m_max - 1).bit_length())),
            "first": 1, "last": 1, "c_addr": unsigned(cfg.rd_addr_bits),
            "cv": unsigned(len(s.cv)), "fin": 1})
        item0 = Signal(item_layout, name="item0")
        m.d.comb += [
            item0.valid.eq(s.issue), item0.i.eq(s.o), item0.first.eq(s.cur.g0 == 0),
            item0.last.eq(self._fold_last(s, s.cur)), item0.c_addr.eq(s.c_ptr),
            item0.cv.eq(s.cv), item0.fin.eq(s.issue & ~s.ld.exists & (s.o == s.m_r - 1)),
        ]
        bottom, inject = cfg.schedule.bottom_delay, cfg.schedule.inject_delay
        line = list(skew_chain(m, item0, bottom + C, "col_item"))
        state_bits = ws_state_layout(cfg).size
        # A row's state is read back when it joins a pass after its tile's first fold.
        rc.count_access("cnt_rd_acc", [line[inject + c - 1].valid & ~line[inject + c - 1].first
                                       for c in range(C)])
        rc.count_access("cnt_wr_acc", [line[bottom + c].valid for c in range(C)])
        c_we = []
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
            # The write enable is decided one stage early and registered (the chain is a
            # plain delay line, so it equals the stage's own condition): the C-write
            # counter's add then starts at a register, not after the compare.
            prev = line[bottom + c - 1]
            we = Signal(name=f"c_we_{c}")
            m.d.sync += we.eq(prev.valid & prev.last & (prev.cv > c))
            c_we.append(we)
            c_rd.append(self.c_lane(m, c, c_we[-1], it.c_addr, result))
        rc.count_access("cnt_wr_c", c_we)
        m.d.comb += self.rd_data.eq(Cat(*c_rd))
        return line[bottom + C - 1].fin
