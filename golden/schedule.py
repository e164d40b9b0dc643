"""The engines' schedules: the exact cycle model of each dataflow.

``config.schedule`` is an :class:`OSSchedule` (``hw.engine.Engine``) or a
:class:`WSSchedule` (``hw.ws.WSEngine``); both have one interface:

- ``cycles(m, k, n)``, ``issued(m, k, n)``, ``stall(m, k, n)``, ``tiles(m, k, n)``: the
  exact values of the engine's ``cnt_cycles``, ``cnt_issued``, ``cnt_stall`` and
  ``cnt_tiles`` counters (the sim regressions assert them on every run);
- ``useful_macs``, ``utilization``, ``useful_utilization``: figures derived from them;
- ``scalesim_cycles(m, k, n)``: what SCALE-Sim 2.0.2 reports for the same GEMM;
- ``formula``, ``scalesim_formula``, ``timing()``: the model as text, for the manifest.

With ``config.tile_skip`` the counters (and the figures derived from them) also take
``skip``, the weight-tile mask of the run (:func:`golden.skip.weight_tile_mask`, one
bool per column tile, True = skipped); ``skip=None`` means no tile is skipped.

The latencies come from :data:`golden.latency.LATENCY` through the config
(``issue_latency``, ``buffer_read_latency``, ``pe_latency``, ``ws_block_end_latency``).
"""

from math import ceil


__all__ = ["Schedule", "OSSchedule", "WSSchedule", "ModesSchedule", "SCHEDULES", "schedule_of"]


class Schedule:
    """What both dataflows' schedules share; subclasses supply ``cycles``, ``tiles``,
    ``rows_issued`` and the formulas.

    Parameters
    ----------
    config : golden.Config
    """

    def __init__(self, config):
        self._config = config

    @property
    def config(self):
        return self._config

    def __repr__(self):
        return f"{type(self).__name__}({self._config!r})"

    @property
    def k_per_cycle(self):
        """K positions one PE covers per cycle: one group of ``m_group``."""
        return self._config.m_group

    @property
    def groups_per_block(self):
        """Groups (cycles of one PE) per MX block."""
        return self._config.groups_per_block

    @property
    def slots_per_pe(self):
        """Multiplier slots of one PE, the products it issues per cycle: ``n_keep``
        (in a unified engine's 4-bit modes each 8-bit-class slot computes two)."""
        return self._config.n_keep


    def skip_mask(self, n, skip):
        """``skip`` checked against an ``n``-column run: None (no tile skipped) or a tuple
        of ``ceil(n / cols)`` bools.  Raises ``ValueError`` when the config has no
        ``tile_skip`` or the length is wrong."""
        if skip is None:
            return None
        c = self._config
        if not c.tile_skip:
            raise ValueError(f"A weight-tile mask needs an engine with tile_skip, not "
                             f"{c.name}")
        skip = tuple(bool(s) for s in skip)
        tiles = ceil(n / c.cols)
        if len(skip) != tiles:
            raise ValueError(f"A weight-tile mask of N={n} needs {tiles} entries (one per "
                             f"column tile), not {len(skip)}")
        return skip

    def computed_columns(self, n, skip=None):
        """Columns of an ``n``-column run in weight tiles that are not skipped."""
        skip = self.skip_mask(n, skip)
        if skip is None:
            return n
        cols = self._config.cols
        return sum(min(cols, n - t * cols) for t, s in enumerate(skip) if not s)

    def issued(self, m, k, n, skip=None):
        """Exact ``cnt_issued``: multiplier slots issued with valid rows and columns
        (each group of a tile with rv valid rows and cv valid columns adds rv*cv*N;
        skipped tiles add nothing)."""
        c = self._config
        c.check_gemm(m, k, n)
        return c.groups(k) * c.n_keep * m * self.computed_columns(n, skip)

    def stall(self, m, k, n, skip=None):
        """Exact ``cnt_stall``: busy cycles in which nothing is issued (a skipped tile's
        cycles are all stalls)."""
        return self.cycles(m, k, n, skip) - self.issue_cycles(m, k, n, skip)

    def buffer_accesses(self, m, k, n, skip=None):
        """Exact word accesses of every buffer in one M x K x N GEMM: buffer name ->
        ``{"reads": ..., "writes": ...}`` in words of that buffer (one word of one bank).

        The engine's reads are the words its array consumes: a bank read counts in the
        cycle its stage's ``valid`` is high (what a read enable driven by the skewed
        control would do; today's read ports read every cycle).  Scale words are read
        once per block (``valid`` and block-first), held by the read port through the
        block.  The host's writes (one word per ``wr_en`` cycle, as ``sim.tb`` loads)
        and its C reads (one ``rd_addr`` per C word of C lanes, all lanes read) are in
        the same counts.  With T = tiles, G = groups, B = padded K / block_size,
        Nt = ceil(N/C):

        - output stationary: every issued group reads one word of all R A banks and all
          C W banks: ``a_data`` reads ``T*G*R``, ``w_data`` ``T*G*C``; scales ``T*B*R``
          and ``T*B*C``.
        - weight stationary: array row r reads K-group ``fold*F + r`` of each issued row
          when that group exists, so ``a_data`` reads ``Nt*M*G``, ``a_scale`` ``Nt*M*B``
          (block-end units); each column loads the pass's groups once: ``w_data``
          ``Nt*C*G``, ``w_scale`` ``Nt*C*B``.  ``acc`` (per column) is written by every
          pass and row, ``passes*M*C``, and read by every fold after the first,
          ``(passes - Nt)*M*C``.
        - both: ``c`` writes ``M*N`` (rows >= M and columns >= N are not written),
          reads ``M*Nt*C``; host writes ``M*G`` / ``N*G`` data and ``M*B`` / ``N*B``
          scale words.

        With a weight-tile mask ``skip`` (``tile_skip``), a skipped output tile reads
        the one group it issues (one word of every bank, scales included) instead of
        its G groups and B blocks; C and the host's figures do not change.
        """
        c = self._config
        c.check_gemm(m, k, n)
        g, b = c.groups(k), c.padded_k(k) // c.block_size
        nt = ceil(n / c.cols)
        skip = self.skip_mask(n, skip)
        # _array_reads(m, k, n) is the mask-free call; the mask is passed only when given.
        reads = (self._array_reads(m, k, n) if skip is None
                 else self._array_reads(m, k, n, skip))
        writes = {"a_data": m * g, "w_data": n * g, "a_scale": m * b, "w_scale": n * b}
        out = {name: {"reads": reads[name], "writes": writes[name]}
               for name in c.host_buffers if name != "c"}
        out["c"] = {"reads": m * nt * c.cols, "writes": m * n}
        out.update(self._state_accesses(m, k, n))
        return out

    def _state_accesses(self, m, k, n):
        """Accesses of buffers beyond the host's (none unless a dataflow has them)."""
        return {}

    def useful_macs(self, m, k, n):
        """Dense-equivalent MACs of the GEMM itself, ``M * K * N`` (no padding)."""
        self._config.check_gemm(m, k, n)
        return m * k * n

    def utilization(self, m, k, n, skip=None):
        """Issued-slot utilization ``issued / (R * C * N * cycles)``.  Slots issued for K
        padding (to whole blocks) count as busy here; see :meth:`useful_utilization`."""
        c = self._config
        return self.issued(m, k, n, skip) / (c.multiplier_slots * self.cycles(m, k, n, skip))

    def useful_utilization(self, m, k, n, skip=None):
        """Useful-MAC utilization ``M*K*N / (peak_macs_per_cycle * cycles)``: the GEMM's
        dense-equivalent MACs against ``R * C * m_group`` per cycle.  For N:M this equals
        the fraction of multiplier slots that multiply a kept weight of the real K."""
        c = self._config
        return self.useful_macs(m, k, n) / (c.peak_macs_per_cycle
                                            * self.cycles(m, k, n, skip))

    def timing(self):
        """The manifest's ``timing`` section."""
        c = self._config
        out = {"issue_latency": c.issue_latency, "buffer_read_latency": c.buffer_read_latency}
        out.update(self._latencies())
        out.update({"formula": self.formula, "tile_period": self.period_text,
                    "scalesim_formula": self.scalesim_formula, "throughput": self.throughput})
        out.update(self._timing_extra())
        return out

    def _latencies(self):
        return {}

    def _timing_extra(self):
        return {}


class OSSchedule(Schedule):
    """Output stationary (``hw.engine.Engine``).

    The controller walks output tiles and issues one group per cycle; a tile's first
    group follows the previous tile's last one, or R cycles after its first when G < R
    (a column's drain chain needs R cycles per tile).

    With ``tile_skip``, a tile whose weight tile is all zero (``skip[j div C]``) runs
    as a one-group tile whose outputs the drain writes as zero: it takes R cycles (the
    drain period) instead of ``P = max(G, R)``, and issues nothing that the counters
    count.
    """

    formula = ("cycles(m, k, n) = issue_latency + (T-1)*P + G - 1 + buffer_read_latency "
               "+ (rows-1) + pe_latency + drain_latency, where "
               "G = ceil(k/block_size)*block_size/m_group, "
               "T = ceil(m/rows)*ceil(n/cols), P = max(G, rows), "
               "drain_latency = rows + cols - 1; issued(m, k, n) = G*n_keep*m*n; "
               "stall(m, k, n) = cycles - T*G")
    scalesim_formula = "ceil(m/rows)*ceil(n/cols)*(G + rows + cols - 2)"
    period_text = "P = max(G, rows)"
    throughput = "one group of m_group K positions per cycle per PE"

    def __init__(self, config, *, pe_latency=None):
        super().__init__(config)
        self._pe_latency = config.pe_latency if pe_latency is None else pe_latency

    @property
    def pe_latency(self):
        """The PE's latency in this model: ``config.pe_latency``, or the unified engine's
        one PE latency for every mode (:class:`ModesSchedule`)."""
        return self._pe_latency

    @property
    def drain_latency(self):
        """Cycles from a tile's bottom-left result being ready to the tile's last C-buffer
        write: R results leave each column's shift chain one per cycle, columns C-1 later."""
        return self._config.rows + self._config.cols - 1

    def output_tiles(self, m, n):
        """Output tiles of an M x N result: ceil(M/R) * ceil(N/C)."""
        return ceil(m / self._config.rows) * ceil(n / self._config.cols)

    def tile_period(self, k):
        """Cycles between the first groups of consecutive tiles: ``max(G, R)``."""
        return max(self._config.groups(k), self._config.rows)

    def cycles(self, m, k, n, skip=None):
        """Exact ``cnt_cycles`` (cycles with ``busy`` high).

        ``issue_latency + (T-1)*P + G - 1`` is the cycle of the last group's read
        address; the bottom-left PE sees it ``buffer_read_latency + R - 1`` cycles later,
        holds the result ``pe_latency`` cycles after that, and the last C write follows
        ``drain_latency`` cycles later.  With a weight-tile mask ``skip`` the controller
        keeps consecutive tiles' last groups at least R cycles apart (the drain period)
        and issues everything else back to back, so tile t's last group follows tile
        t-1's by ``max(G_t, R)`` with ``G_t = 1`` for a skipped tile: the first tile
        takes ``G_0`` cycles and every later one R (skipped) or P.
        """
        c = self._config
        c.check_gemm(m, k, n)
        t, g, p = self.output_tiles(m, n), c.groups(k), self.tile_period(k)
        skip = self.skip_mask(n, skip)
        if skip is None:
            issue = (t - 1) * p + g
        else:
            # Each tile's last group follows the previous tile's by max(G_t, R), G_t = 1
            # for a skipped tile; the first tile takes G_0.
            row = [c.rows if s else p for s in skip]     # one tile row's periods
            issue = ceil(m / c.rows) * sum(row) - row[0] + (1 if skip[0] else g)
        return (c.issue_latency + issue - 1 + c.buffer_read_latency
                + c.rows - 1 + self.pe_latency + self.drain_latency)

    def issue_cycles(self, m, k, n, skip=None):
        """Cycles in which a group is issued: T*G (tiles that are not skipped)."""
        skip = self.skip_mask(n, skip)
        tiles = self.output_tiles(m, n)
        if skip is not None:
            tiles = ceil(m / self._config.rows) * skip.count(False)
        return tiles * self._config.groups(k)

    def _array_reads(self, m, k, n, skip=None):
        """Every issued group reads one word of all R A banks and all C W banks; the
        scale words once per block.  A skipped tile issues one group (one block)."""
        c = self._config
        t, g, b = self.output_tiles(m, n), c.groups(k), c.padded_k(k) // c.block_size
        ts = 0 if skip is None else ceil(m / c.rows) * sum(skip)     # skipped tiles
        groups, blocks = (t - ts) * g + ts, (t - ts) * b + ts
        return {"a_data": groups * c.rows, "w_data": groups * c.cols,
                "a_scale": blocks * c.rows, "w_scale": blocks * c.cols}

    def tiles(self, m, k, n, skip=None):
        """Exact ``cnt_tiles``: output tiles (skipped ones included)."""
        self._config.check_gemm(m, k, n)
        self.skip_mask(n, skip)
        return self.output_tiles(m, n)

    def scalesim_cycles(self, m, k, n):
        """SCALE-Sim 2.0.2's total cycles for output stationary on R x C, K counted in
        sparsity groups (``Kg = ceil(K/m_group)``, no block padding) and SRAMs that never
        stall: ``ceil(M/R)*ceil(N/C)*(Kg + R + C - 2) - 1``.  ``tests/test_cycle_figures.py``
        pins it against the real tool's table (``tools/scalesim_table.py``)."""
        c = self._config
        c.check_gemm(m, k, n)
        return self.output_tiles(m, n) * (c.k_groups(k) + c.rows + c.cols - 2) - 1

    def _latencies(self):
        c = self._config
        return {"pe_latency": self.pe_latency, "drain_latency": self.drain_latency,
                "tile_fifo_depth": c.tile_fifo_depth}

    def _timing_extra(self):
        if not self._config.tile_skip:
            return {}
        return {"tile_skip": "a tile whose weight tile (C columns of W, all of K) holds "
                             "only zero values takes rows cycles and one unissued group "
                             "instead of P cycles and G groups; its outputs are written "
                             "as +0 (golden.skip)"}


class WSSchedule(Schedule):
    """Weight stationary (``hw.ws.WSEngine``).

    A weight pass loads the weights of ``ws_fold_groups`` K-groups of one column tile into
    the PEs (double buffered, while the previous pass streams) and streams every
    activation row through them; partial sums flow down, and block-end units below the
    rows where MX blocks end (``config.ws_block_end_rows``) scale, round and add them to
    the binary32 partial that flows beside them.
    """

    formula = ("cycles(m, k, n) = issue_latency + F + (P-1)*Pp + m - 1 + "
               "ws_bottom_delay + cols - 1, where F = ws_fold_groups, "
               "P = ws_folds(k)*ceil(n/cols) weight passes, "
               "Pp = rows*ceil(max(m, ws_min_pass)/rows); issued(m, k, n) = "
               "G*n_keep*m*n; stall(m, k, n) = cycles - P*m")
    scalesim_formula = "ceil(k/(rows*m_group))*ceil(n/cols)*(2*rows + cols + m - 2)"
    period_text = "Pp = rows*ceil(max(m, ws_min_pass)/rows) cycles per weight pass"
    throughput = ("one activation row per cycle; each PE holds one group of "
                  "m_group K positions of one column")

    def row_delay(self, r):
        """Cycles from an activation row's issue (its row-0 buffer address) to array row
        ``r``, column 0 seeing it: the address skew ``r``, the buffer read and the
        block-end units above the row."""
        c = self._config
        ends = sum(1 for e in c.ws_block_end_rows if e < r)
        return c.buffer_read_latency + r + c.ws_block_end_latency * ends

    @property
    def bottom_delay(self):
        """Cycles from an activation row's issue to its partial-sum state leaving the
        bottom of column 0 (registered; column c is c cycles later): the bottom row's
        delay, its PE, the registered join of the carried state
        (``config.ws_join_stages``) and the bottom block-end unit, if any."""
        c = self._config
        last = c.ws_fold_groups - 1
        tail = c.ws_block_end_latency if last in c.ws_block_end_rows else 0
        assert not c.ws_join_stages or c.ws_inject_row == last, "the join is at the bottom"
        return self.row_delay(last) + c.ws_pe_latency + c.ws_join_stages + tail

    @property
    def inject_delay(self):
        """Cycles from an activation row's issue to its state from the previous pass
        joining below ``ws_inject_row`` in column 0 (column c is c cycles later)."""
        return self.row_delay(self._config.ws_inject_row) + self._config.ws_pe_latency

    @property
    def min_pass(self):
        """Shortest pass, the largest of: loading the next pass's F weight words; the
        next-but-one pass overwriting a weight register only after this pass's last
        row used it at the bottom (``row_delay(F-1)``, with passes at least m long);
        and the next pass reading a row's state after this pass wrote it at the bottom
        (``bottom_delay - inject_delay + 2``)."""
        f = self._config.ws_fold_groups
        return max(f, self.row_delay(f - 1), self.bottom_delay - self.inject_delay + 2)

    def folds(self, k):
        """Weight passes along K per column tile: ceil(G / ws_fold_groups)."""
        return ceil(self._config.groups(k) / self._config.ws_fold_groups)

    def passes(self, k, n):
        """Weight passes of a GEMM: column tiles (outer) times folds along K (inner)."""
        return self.folds(k) * ceil(n / self._config.cols)

    def pass_period(self, m):
        """Cycles per pass: ``rows * ceil(max(m, min_pass) / rows)`` (a multiple of
        ``rows`` so that the A bank an array row reads never collides with another)."""
        rows = self._config.rows
        return rows * ceil(max(m, self.min_pass) / rows)

    def cycles(self, m, k, n, skip=None):
        """Exact ``cnt_cycles``.

        The first pass's weights load in ``ws_fold_groups`` cycles, then passes start
        ``pass_period(m)`` apart (the next pass's weights load during the last
        ``ws_fold_groups`` cycles of the current one); the last row of the last pass
        leaves the bottom ``bottom_delay`` cycles after its issue and column C-1
        writes it C-1 cycles later.
        """
        c = self._config
        c.check_gemm(m, k, n)
        self.skip_mask(n, skip)        # no WS engine skips tiles: only None passes
        return (c.issue_latency + c.ws_fold_groups
                + (self.passes(k, n) - 1) * self.pass_period(m) + m - 1
                + self.bottom_delay + c.cols - 1)

    def issue_cycles(self, m, k, n, skip=None):
        """Cycles in which an activation row is issued: P*m."""
        self.skip_mask(n, skip)
        return self.passes(k, n) * m

    def _array_reads(self, m, k, n, skip=None):
        """Array row r reads K-group ``fold*F + r`` of each issued row when that group
        exists; each column loads the pass's groups once."""
        c = self._config
        g, b, nt = c.groups(k), c.padded_k(k) // c.block_size, ceil(n / c.cols)
        return {"a_data": nt * m * g, "w_data": nt * c.cols * g,
                "a_scale": nt * m * b, "w_scale": nt * c.cols * b}

    def _state_accesses(self, m, k, n):
        """The per-column accumulator memory: written by every pass and row, read by
        every fold after the first."""
        c, passes, nt = self._config, self.passes(k, n), ceil(n / self._config.cols)
        return {"acc": {"reads": (passes - nt) * m * c.cols, "writes": passes * m * c.cols}}

    def tiles(self, m, k, n, skip=None):
        """Exact ``cnt_tiles``: weight passes."""
        self._config.check_gemm(m, k, n)
        self.skip_mask(n, skip)
        return self.passes(k, n)

    def scalesim_cycles(self, m, k, n):
        """SCALE-Sim 2.0.2's total cycles for weight stationary on R x C:
        ``ceil(Kg/R)*ceil(N/C)*(2R + C + M - 2) - 1`` with ``Kg = ceil(K/m_group)``."""
        c = self._config
        c.check_gemm(m, k, n)
        return (ceil(c.k_groups(k) / c.rows) * ceil(n / c.cols)
                * (2 * c.rows + c.cols + m - 2) - 1)

    def _timing_extra(self):
        c = self._config
        return {
            "ws_fold_groups": c.ws_fold_groups,
            "ws_block_end_rows": list(c.ws_block_end_rows),
            "ws_block_end_latency": c.ws_block_end_latency,
            "ws_bottom_delay": self.bottom_delay,
            "ws_inject_row": c.ws_inject_row,
            "ws_inject_delay": self.inject_delay,
            "ws_min_pass": self.min_pass,
            "ws_carry_exact": c.ws_carry_exact,
            "cnt_tiles": "weight passes",
        }


class ModesSchedule:
    """The cycle model of a unified engine (``config.unified``): one schedule per mode.

    Each GEMM runs in one mode, chosen at ``start``; in mode ``spec`` the engine's
    counters are exactly those of an :class:`OSSchedule` of ``config.mode(spec)`` (one
    group of that mode's ``m_group`` K positions per PE per cycle) with the unified PE's
    latency ``config.pe_latency``, the same in every mode (the pipelined PE's adder fits
    the mode with the shortest blocks, so it may be shorter than a fixed engine's of
    that mode: ``Config.acc_add_stages``).  A mode switch costs
    nothing beyond what every GEMM pays: the controller
    registers the mode with the shape at ``start``, and a GEMM begins only after the
    previous one's ``done``, when its last result has left the pipeline, so back-to-back
    GEMMs take the sum of their own cycles whatever their modes (:meth:`sequence_cycles`).

    Parameters
    ----------
    config : golden.Config
        A unified config.
    """

    def __init__(self, config):
        assert config.unified, config
        self._config = config
        # One PE serves every mode, so every mode's model has the unified PE's latency.
        self._modes = {mode: OSSchedule(config.mode(mode), pe_latency=config.pe_latency)
                       for mode in config.modes}

    @property
    def config(self):
        return self._config

    def __repr__(self):
        return f"ModesSchedule({self._config!r})"

    def mode(self, spec):
        """The schedule of one mode (an :class:`OSSchedule`)."""
        return self._modes[self._config.mode(spec).all_modes[0]]

    def cycles(self, m, k, n, mode):
        """Exact ``cnt_cycles`` of one GEMM in ``mode``."""
        return self.mode(mode).cycles(m, k, n)

    def issued(self, m, k, n, mode):
        """Exact ``cnt_issued`` (products) of one GEMM in ``mode``."""
        return self.mode(mode).issued(m, k, n)

    def stall(self, m, k, n, mode):
        return self.mode(mode).stall(m, k, n)

    def tiles(self, m, k, n, mode):
        return self.mode(mode).tiles(m, k, n)

    def utilization(self, m, k, n, mode):
        """Issued products over the mode's multiplier slots (``R*C*n_keep`` per cycle)."""
        return self.mode(mode).utilization(m, k, n)

    def buffer_accesses(self, m, k, n, mode=None):
        """Exact buffer word accesses of one GEMM in ``mode``: the fixed engine's of that
        mode (one word per issued group of the mode's ``m_group``).  Every mode has the
        same buffers, so without ``mode`` the first mode's figures name them (what
        :func:`golden.counters.access_names` reads)."""
        return self.mode(self._config.modes[0] if mode is None else mode).buffer_accesses(
            m, k, n)

    def sequence_cycles(self, runs):
        """Total ``cnt_cycles`` of back-to-back GEMMs ``[(mode, m, k, n), ...]``: the sum
        of each run's own cycles (a switch adds 0 cycles, :attr:`switch_cost`)."""
        return sum(self.cycles(m, k, n, mode) for mode, m, k, n in runs)

    #: Cycles a mode switch adds to a GEMM beyond its own ``cycles`` (see the class).
    switch_cost = 0

    def drain_cycles(self, mode):
        """The pipeline fill and drain every GEMM pays whatever the previous mode was:
        ``cycles - (T-1)*P - G``, i.e. ``issue_latency + buffer_read_latency + (rows-1) +
        pe_latency + drain_latency`` cycles in which its first or last tile is not
        issuing."""
        c = self._config
        s = self.mode(mode)
        return (c.issue_latency + c.buffer_read_latency + c.rows - 1 + s.pe_latency
                + s.drain_latency)

    def timing(self):
        """The manifest's ``timing`` section: shared latencies, then one entry per mode."""
        out = {"switch_cost": self.switch_cost,
               "formula": "cycles(m, k, n, mode) = OSSchedule(config.mode(mode), "
                          "pe_latency=config.pe_latency).cycles(m, k, n)"}
        out["modes"] = {mode.spec: self._modes[mode].timing() for mode in self._config.modes}
        return out


#: Dataflow (string value) -> schedule class.
SCHEDULES = {"os": OSSchedule, "ws": WSSchedule}


def schedule_of(config):
    """``config.schedule``: a :class:`ModesSchedule` for a unified config, else the
    dataflow's schedule."""
    if config.unified:
        return ModesSchedule(config)
    return SCHEDULES[config.dataflow.value](config)
