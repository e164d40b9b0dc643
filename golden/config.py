"""The one configuration object of an nmmx engine.

``hw``, ``golden``, ``sim``, ``synth``, ``dse`` and every command line take a
:class:`Config`.  It is validated once, here; every width, depth and latency that
more than one place needs is a named property on it.
"""

import enum
from dataclasses import dataclass, fields, asdict
from math import ceil

from .formats import BINARY32, get_format
from .latency import LATENCY

__all__ = ["Config", "Dataflow", "LATENCY", "SPARSITY_GROUPS", "DATAFLOWS", "MAX_BUFFER_BITS",
           "parse_sparsity"]

#: Group sizes M of N:M sparsity that the PE supports (log2(M)-bit indices).
SPARSITY_GROUPS = (1, 2, 4, 8, 16)
class Dataflow(enum.StrEnum):
    """The array's dataflow (strings accepted; :class:`Config` stores the enum)."""

    OS = "os"   # output stationary, hw.engine.Engine
    WS = "ws"   # weight stationary, hw.ws.WSEngine


DATAFLOWS = tuple(d.value for d in Dataflow)    #: the dataflows, as command-line strings
#: Array dimensions the generator accepts.
MAX_DIM = 64
#: Upper bound on :attr:`Config.host_buffer_bits`, the on-chip bits that ``m_max``,
#: ``k_max`` and ``n_max`` imply: 2**31 bits (256 MiB).  That is several times the SRAM of
#: the largest single accelerator dies built so far, so no engine an architect would
#: tape out is refused; yet the Verilog memories, the simulator's model of them and the
#: golden model's operand arrays of a GEMM that fills them still fit in a workstation's
#: memory, whereas an unbounded ``k_max`` ends in ``MemoryError`` deep inside generation.
MAX_BUFFER_BITS = 2 ** 31


def parse_sparsity(text):
    """Parse ``"2:4"`` into ``(2, 4)``; raise ``ValueError`` naming the text."""
    if isinstance(text, tuple):
        return text
    if not isinstance(text, str):
        raise TypeError(f"Sparsity must be written N:M, not {text!r}")
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"Sparsity must be written N:M with whole numbers, not {text!r}")
    return int(parts[0]), int(parts[1])


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {bound}, not {value}")


@dataclass(frozen=True, kw_only=True)
class Config:
    """Parameters of one generated GEMM engine.

    Parameters
    ----------
    rows, cols : int
        Systolic array size R x C (1..64 each; need not be square).
    a_format, w_format : str
        Element formats of activations and weights (names from
        :data:`golden.formats.FORMATS`).  ``int8`` pairs only with ``int8``.
    sparsity : tuple of (int, int)
        N:M structured sparsity of the weights along K: N stored slots per group of M.
        Dense is N:N.  M must be one of 1, 2, 4, 8, 16.
    block_size : int
        MX block length along K (a positive multiple of M).  int8 has no blocks: its
        engine pads K only to whole sparsity groups, so for int8 the value is checked
        to be a whole number and then stored as M (the block is one group).
    dataflow : Dataflow or str
        ``"os"`` (output stationary, :class:`hw.engine.Engine`) or ``"ws"`` (weight
        stationary, :class:`hw.ws.WSEngine`); stored as a :class:`Dataflow`.
    m_max, k_max, n_max : int
        Largest GEMM the engine's buffers hold (C[M x N] = A[M x K] W[K x N]).

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        A parameter is out of range, or two parameters do not fit together.
    """

    rows: int = 8
    cols: int = 8
    a_format: str = "mxfp8_e4m3"
    w_format: str = "mxfp8_e4m3"
    sparsity: tuple = (2, 4)
    block_size: int = 32
    dataflow: Dataflow = Dataflow.OS
    m_max: int = 64
    k_max: int = 1024
    n_max: int = 64

    def __post_init__(self):
        _check_int("rows", self.rows, 1, MAX_DIM)
        _check_int("cols", self.cols, 1, MAX_DIM)
        a, w = get_format(self.a_format), get_format(self.w_format)
        # Format objects are accepted and stored by name, so the config stays plain text.
        object.__setattr__(self, "a_format", a.name)
        object.__setattr__(self, "w_format", w.name)
        if a.scaled != w.scaled:
            raise ValueError(f"int8 only pairs with int8, not a_format={a.name} with "
                             f"w_format={w.name}")
        sp = parse_sparsity(self.sparsity)
        if isinstance(self.sparsity, list) or sp != self.sparsity:
            object.__setattr__(self, "sparsity", tuple(sp))
        n, m = self.sparsity
        for v in (n, m):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"Sparsity must be two whole numbers N:M, not {n!r}:{m!r}")
        if m not in SPARSITY_GROUPS:
            groups = ", ".join(map(str, SPARSITY_GROUPS))
            raise ValueError(f"N:M sparsity needs M in {{{groups}}}, not {n}:{m}")
        if not 0 < n <= m:
            raise ValueError(f"N:M sparsity needs 0 < N <= M, not {n}:{m}")
        _check_int("block_size", self.block_size, 1)
        if not a.scaled:
            # The one place where block_size meets int8: no scales, no blocks, so K is
            # padded to whole groups only (padded_k, groups, buffer depths follow).
            object.__setattr__(self, "block_size", m)
        if self.block_size % m:
            raise ValueError(f"block_size must be a multiple of the sparsity group M={m}, "
                             f"not {self.block_size}")
        if self.dataflow not in DATAFLOWS:    # a Dataflow equals its string
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"not {self.dataflow!r}")
        object.__setattr__(self, "dataflow", Dataflow(self.dataflow))
        _check_int("m_max", self.m_max, 1)
        _check_int("k_max", self.k_max, 1)
        _check_int("n_max", self.n_max, 1)
        bits = self.host_buffer_bits
        if bits > MAX_BUFFER_BITS:
            raise ValueError(f"m_max={self.m_max}, k_max={self.k_max} and n_max={self.n_max} "
                             f"need {bits} buffer bits, more than the limit of "
                             f"{MAX_BUFFER_BITS} (2**31)")

    # -- identity ----------------------------------------------------------------------

    @property
    def name(self):
        """Default top-level name, e.g. ``nmmx_os_8x8_mxfp4e2m1_2of4``."""
        a, w = self.a_fmt, self.w_fmt
        fmt = a.width_label if a is w else f"w{w.width_label}_a{a.width_label}"
        return f"nmmx_{self.dataflow.value}_{self.rows}x{self.cols}_{fmt}_{self.n_keep}of{self.m_group}"

    def to_dict(self):
        d = asdict(self)
        d["sparsity"] = f"{self.n_keep}:{self.m_group}"
        d["dataflow"] = self.dataflow.value
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # -- formats and sparsity -------------------------------------------------------------

    @property
    def a_fmt(self):
        return get_format(self.a_format)

    @property
    def w_fmt(self):
        return get_format(self.w_format)

    @property
    def scaled(self):
        """MX engine (E8M0 block scales, binary32 output) rather than plain int8."""
        return self.a_fmt.scaled

    @property
    def n_keep(self):
        return self.sparsity[0]

    @property
    def m_group(self):
        return self.sparsity[1]

    @property
    def dense(self):
        """N == M: every position is stored, indices are implicit, no select muxes."""
        return self.n_keep == self.m_group

    @property
    def index_bits(self):
        """Width of one stored metadata index (0 when dense: the index is implicit)."""
        return 0 if self.dense else (self.m_group - 1).bit_length()

    @property
    def log2_m_group(self):
        """log2(M): shifting a K index right by it gives the group (M is a power of two)."""
        return self.m_group.bit_length() - 1

    @property
    def scale_bits(self):
        return 8 if self.scaled else 0

    @property
    def block_exp_bits(self):
        """Signed width of ``a_scale + w_scale + product_lsb_exp - 2*bias`` (MX): two
        codes sum in scale_bits + 1 bits, plus a sign, plus one for the offset."""
        return self.scale_bits + 3

    @property
    def groups_per_block(self):
        return self.block_size // self.m_group

    @property
    def slots_per_block(self):
        """Stored weight values per MX block: ``block_size * N / M``."""
        return self.groups_per_block * self.n_keep

    # -- datapath widths -----------------------------------------------------------------

    @property
    def product_lsb_exp(self):
        """Exponent of one unit of the exact product (and of the block accumulator)."""
        return self.a_fmt.lsb_exp + self.w_fmt.lsb_exp

    @property
    def product_bits(self):
        """Signed width of one exact product in units of ``2**product_lsb_exp``."""
        return (self.a_fmt.max_int * self.w_fmt.max_int).bit_length() + 1

    @property
    def product_has_inf(self):
        """Some element format of this config encodes +-Inf, so a product can be +-Inf."""
        return self.a_fmt.inf or self.w_fmt.inf

    @property
    def product_has_nan(self):
        """A product can be NaN: a format encodes NaN, or Inf x 0 is possible."""
        return self.a_fmt.nan != "none" or self.w_fmt.nan != "none" or self.product_has_inf

    @property
    def block_acc_bits(self):
        """Signed width of the exact block accumulator: no block sum ever rounds or wraps."""
        if not self.scaled:
            return 32
        return (self.a_fmt.max_int * self.w_fmt.max_int * self.slots_per_block).bit_length() + 1

    @property
    def acc_bits(self):
        """Output word width: binary32 for MX engines, int32 for int8."""
        return BINARY32.bits

    # -- packed words (manifest word layouts are built from these) ---------------------------

    @property
    def a_group_bits(self):
        """One activation group: M element codes, element k at bits [k*bits, (k+1)*bits)."""
        return self.m_group * self.a_fmt.bits

    @property
    def w_slot_bits(self):
        """One stored weight slot: value code in the low bits, then its index."""
        return self.w_fmt.bits + self.index_bits

    @property
    def w_group_bits(self):
        return self.n_keep * self.w_slot_bits

    # -- buffer geometry ---------------------------------------------------------------------

    @property
    def kp_max(self):
        """``k_max`` rounded up to whole MX blocks (the engine pads K with zeros)."""
        return self.padded_k(self.k_max)

    @property
    def groups_max(self):
        return self.groups(self.k_max)

    @property
    def blocks_max(self):
        return self.kp_max // self.block_size

    @property
    def m_tiles_max(self):
        return ceil(self.m_max / self.rows)

    @property
    def n_tiles_max(self):
        return ceil(self.n_max / self.cols)

    def padded_k(self, k):
        """K rounded up to whole MX blocks (int8: whole sparsity groups, since int8's
        ``block_size`` is the group)."""
        return ceil(k / self.block_size) * self.block_size

    def k_groups(self, k):
        """Sparsity groups that cover K without block padding: ``ceil(K / m_group)``
        (the K extent of the GEMM as an array that takes one group per PE per cycle)."""
        return ceil(k / self.m_group)

    def check_gemm(self, m, k, n):
        """Raise ``ValueError`` if an M x K x N GEMM does not fit the engine's buffers."""
        for name, v, hi in (("M", m, self.m_max), ("K", k, self.k_max), ("N", n, self.n_max)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"GEMM {name} must be a whole number, not {v!r}")
            if not 1 <= v <= hi:
                raise ValueError(f"GEMM {name}={v} does not fit this engine "
                                 f"({name.lower()}_max={hi})")

    # -- timing: the exact cycle model of hw.engine.Engine -----------------------------------
    # Owned by the engine (hw/engine.py implements exactly this schedule); the sim
    # regressions assert cnt_cycles == cycles(m, k, n) for every run.

    @property
    def issue_latency(self):
        """Cycles from the clock edge that samples ``start`` to the first group's buffer
        read address (the controller registers the shape first)."""
        return LATENCY["issue"]

    @property
    def buffer_read_latency(self):
        """Synchronous buffer read: data reaches the array one cycle after its address."""
        return LATENCY["buffer_read"]

    @property
    def pe_latency(self):
        """Cycles from a PE seeing a tile's last group to its result register holding the
        tile's output (MX: products, block accumulator, converter, binary32 adder; int8:
        products, int32 accumulator)."""
        return LATENCY["pe_mx" if self.scaled else "pe_int8"]

    @property
    def drain_latency(self):
        """Cycles from a tile's bottom-left result being ready to the tile's last C-buffer
        write: R results leave each column's shift chain one per cycle, columns C-1 later."""
        return self.rows + self.cols - 1

    @property
    def tile_fifo_depth(self):
        """Tiles whose drain is pending while later tiles issue (a tile is drained
        ``buffer_read_latency + rows - 1 + pe_latency`` cycles after its last group, and
        tiles start at least ``rows`` cycles apart)."""
        lag = self.buffer_read_latency + self.rows - 1 + self.pe_latency
        return 1 << (ceil(lag / self.rows) + 1).bit_length()

    def groups(self, k):
        """Groups G streamed per tile for a run-time K (K padded to whole blocks)."""
        return self.padded_k(k) // self.m_group

    def tiles(self, m, n):
        """Output tiles of an M x N result: ceil(M/R) * ceil(N/C)."""
        return ceil(m / self.rows) * ceil(n / self.cols)

    def tile_period(self, k):
        """Cycles between the first groups of consecutive tiles: ``max(G, R)``.  A column's
        drain chain needs R cycles per tile, so short-K tiles wait for it."""
        return max(self.groups(k), self.rows)

    def cycles(self, m, k, n):
        """Exact ``cnt_cycles`` of an M x K x N GEMM: cycles with ``busy`` high.

        ``issue_latency + (T-1)*P + G - 1`` is the cycle of the last group's read
        address; the bottom-left PE sees it ``buffer_read_latency + R - 1`` cycles later,
        holds the result ``pe_latency`` cycles after that, and the last C write follows
        ``drain_latency`` cycles later.
        """
        self.check_gemm(m, k, n)
        if self.dataflow is Dataflow.WS:
            return self.ws_cycles(m, k, n)
        t, g, p = self.tiles(m, n), self.groups(k), self.tile_period(k)
        return (self.issue_latency + (t - 1) * p + g - 1 + self.buffer_read_latency
                + self.rows - 1 + self.pe_latency + self.drain_latency)

    def issued_slots(self, m, k, n):
        """Exact ``cnt_issued``: multiplier slots issued with valid rows and columns
        (each group of a tile with rv valid rows and cv valid columns adds rv*cv*N)."""
        self.check_gemm(m, k, n)
        return self.groups(k) * self.n_keep * m * n

    def stall_cycles(self, m, k, n):
        """Exact ``cnt_stall``: busy cycles in which no group is issued (weight
        stationary: no activation row)."""
        if self.dataflow is Dataflow.WS:
            return self.cycles(m, k, n) - self.ws_passes(k, n) * m
        return self.cycles(m, k, n) - self.tiles(m, n) * self.groups(k)

    def counted_tiles(self, m, k, n):
        """Exact ``cnt_tiles``: output tiles (os) or weight passes (ws)."""
        self.check_gemm(m, k, n)
        if self.dataflow is Dataflow.WS:
            return self.ws_passes(k, n)
        return self.tiles(m, n)

    def buffer_accesses(self, m, k, n):
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
        """
        self.check_gemm(m, k, n)
        R, C = self.rows, self.cols
        g, b, nt = self.groups(k), self.padded_k(k) // self.block_size, ceil(n / self.cols)
        if self.dataflow == "ws":
            passes = self.ws_passes(k, n)
            reads = {"a_data": nt * m * g, "w_data": nt * C * g,
                     "a_scale": nt * m * b, "w_scale": nt * C * b}
        else:
            t = self.tiles(m, n)
            reads = {"a_data": t * g * R, "w_data": t * g * C,
                     "a_scale": t * b * R, "w_scale": t * b * C}
        writes = {"a_data": m * g, "w_data": n * g, "a_scale": m * b, "w_scale": n * b}
        out = {name: {"reads": reads[name], "writes": writes[name]}
               for name in self.host_buffers if name != "c"}
        out["c"] = {"reads": m * nt * C, "writes": m * n}
        if self.dataflow == "ws":
            out["acc"] = {"reads": (passes - nt) * m * C, "writes": passes * m * C}
        return out

    @property
    def pes(self):
        """Processing elements in the array: R x C."""
        return self.rows * self.cols

    @property
    def multiplier_slots(self):
        """Multipliers in the array, R x C x N: the denominator of utilization."""
        return self.pes * self.n_keep

    @property
    def peak_macs_per_cycle(self):
        """Dense-equivalent MACs per cycle at full utilization, R x C x M: each PE covers
        M K-positions per cycle with its N multipliers."""
        return self.pes * self.m_group

    def utilization(self, m, k, n):
        """Issued-slot utilization ``issued / (R * C * N * cycles)`` predicted by the
        model.  Slots issued for K padding (to whole blocks) count as busy here; see
        :meth:`useful_utilization` for the fraction that does useful work."""
        return self.issued_slots(m, k, n) / (self.multiplier_slots * self.cycles(m, k, n))

    def useful_macs(self, m, k, n):
        """Dense-equivalent MACs of the GEMM itself, ``M * K * N`` (no padding)."""
        self.check_gemm(m, k, n)
        return m * k * n

    def useful_utilization(self, m, k, n):
        """Useful-MAC utilization ``M*K*N / (peak_macs_per_cycle * cycles)``: the GEMM's
        dense-equivalent MACs against ``R * C * m_group`` per cycle.  For N:M this equals
        the fraction of multiplier slots that multiply a kept weight of the real K
        (``M*K*N*N/m_group`` products over ``R*C*N*cycles`` slots)."""
        return self.useful_macs(m, k, n) / (self.peak_macs_per_cycle * self.cycles(m, k, n))

    def scalesim_cycles(self, m, k, n):
        """Total cycles that SCALE-Sim 2.0.2 reports for this GEMM on an R x C array of
        this config's dataflow, with K counted in sparsity groups (``k_groups(k)``, no
        block padding: SCALE-Sim has no MX blocks) and SRAMs that never stall.

        Output stationary: ``ceil(M/R)*ceil(N/C)*(Kg + R + C - 2) - 1``; weight
        stationary: ``ceil(Kg/R)*ceil(N/C)*(2R + C + M - 2) - 1``, with
        ``Kg = ceil(K/m_group)``.  ``tests/test_cycle_figures.py`` pins these against a
        table produced by the real tool (``tools/scalesim_table.py``).
        """
        self.check_gemm(m, k, n)
        kg = self.k_groups(k)
        if self.dataflow is Dataflow.WS:
            return (ceil(kg / self.rows) * ceil(n / self.cols)
                    * (2 * self.rows + self.cols + m - 2) - 1)
        return self.tiles(m, n) * (kg + self.rows + self.cols - 2) - 1

    @property
    def timing_formula(self):
        """The cycle model as text (for the manifest)."""
        if self.dataflow is Dataflow.WS:
            return ("cycles(m, k, n) = issue_latency + F + (P-1)*Pp + m - 1 + "
                    "ws_bottom_delay + cols - 1, where F = ws_fold_groups, "
                    "P = ws_folds(k)*ceil(n/cols) weight passes, "
                    "Pp = rows*ceil(max(m, ws_min_pass)/rows); issued(m, k, n) = "
                    "G*n_keep*m*n; stall(m, k, n) = cycles - P*m")
        return ("cycles(m, k, n) = issue_latency + (T-1)*P + G - 1 + buffer_read_latency "
                "+ (rows-1) + pe_latency + drain_latency, where "
                "G = ceil(k/block_size)*block_size/m_group, "
                "T = ceil(m/rows)*ceil(n/cols), P = max(G, rows), "
                "drain_latency = rows + cols - 1; issued(m, k, n) = G*n_keep*m*n; "
                "stall(m, k, n) = cycles - T*G")

    # -- weight-stationary timing: the exact cycle model of hw.ws.WSEngine ------------------
    # A weight pass loads the weights of ws_fold_groups K-groups of one column tile into
    # the PEs (double buffered, while the previous pass streams) and streams every
    # activation row through them; partial sums flow down, exact inside an MX block, and
    # block-end units below the rows where blocks end scale, round and add them to the
    # binary32 partial that flows beside them.

    @property
    def ws_fold_groups(self):
        """K-groups per weight pass (array rows in use).  MX: a whole number of blocks
        (``rows // groups_per_block`` blocks) when a block fits the rows, otherwise the
        largest divisor of ``groups_per_block`` that fits, so that block ends always sit
        at the same rows; int8: ``rows``."""
        gpb = self.groups_per_block
        if not self.scaled:
            return self.rows
        if self.rows >= gpb:
            return self.rows // gpb * gpb
        return max(d for d in range(1, self.rows + 1) if gpb % d == 0)

    @property
    def ws_carry_exact(self):
        """A block spans several passes (``ws_fold_groups < groups_per_block``), so the
        exact partial block sum and its special flags are carried from pass to pass in
        the accumulator memory beside the binary32 partial."""
        return self.scaled and self.ws_fold_groups < self.groups_per_block

    @property
    def ws_block_end_rows(self):
        """Rows below which a block-end unit (converter + binary32 adder) sits."""
        if not self.scaled:
            return ()
        f, gpb = self.ws_fold_groups, self.groups_per_block
        if self.ws_carry_exact:
            return (f - 1,)
        return tuple(r for r in range(f) if (r + 1) % gpb == 0)

    @property
    def ws_block_end_latency(self):
        """Pipeline stages of a block-end unit (convert, then add)."""
        return LATENCY["ws_block_end"] if self.scaled else 0

    def ws_row_delay(self, r):
        """Cycles from an activation row's issue (its row-0 buffer address) to array row
        ``r``, column 0 seeing it: the address skew ``r``, the buffer read and the
        block-end units above the row."""
        ends = sum(1 for e in self.ws_block_end_rows if e < r)
        return self.buffer_read_latency + r + self.ws_block_end_latency * ends

    @property
    def ws_bottom_delay(self):
        """Cycles from an activation row's issue to its partial-sum state leaving the
        bottom of column 0 (registered; column c is c cycles later)."""
        last = self.ws_fold_groups - 1
        tail = self.ws_block_end_latency if last in self.ws_block_end_rows else 0
        return self.ws_row_delay(last) + LATENCY["ws_pe"] + tail

    @property
    def ws_inject_row(self):
        """Row below which a column's state from the previous pass joins the new partial
        sums: the first block-end row (MX: the binary32 partial starts there, and a
        carried exact partial joins the bottom block-end unit), or the bottom (int8)."""
        if self.scaled:
            return self.ws_block_end_rows[0]
        return self.ws_fold_groups - 1

    @property
    def ws_inject_delay(self):
        """Cycles from an activation row's issue to its state from the previous pass
        joining below ``ws_inject_row`` in column 0 (column c is c cycles later)."""
        return self.ws_row_delay(self.ws_inject_row) + LATENCY["ws_pe"]

    @property
    def ws_min_pass(self):
        """Shortest pass, the largest of: loading the next pass's F weight words; the
        next-but-one pass overwriting a weight register only after this pass's last
        row used it at the bottom (``ws_row_delay(F-1)``, with passes at least m long);
        and the next pass reading a row's state after this pass wrote it at the bottom
        (``ws_bottom_delay - ws_inject_delay + 2``)."""
        return max(self.ws_fold_groups, self.ws_row_delay(self.ws_fold_groups - 1),
                   self.ws_bottom_delay - self.ws_inject_delay + 2)

    def ws_folds(self, k):
        """Weight passes along K per column tile: ceil(G / ws_fold_groups)."""
        return ceil(self.groups(k) / self.ws_fold_groups)

    def ws_passes(self, k, n):
        """Weight passes of a GEMM: column tiles (outer) times folds along K (inner)."""
        return self.ws_folds(k) * ceil(n / self.cols)

    def ws_pass_period(self, m):
        """Cycles per pass: ``rows * ceil(max(m, ws_min_pass) / rows)`` (a multiple of
        ``rows`` so that the A bank an array row reads never collides with another)."""
        return self.rows * ceil(max(m, self.ws_min_pass) / self.rows)

    def ws_cycles(self, m, k, n):
        """Exact ``cnt_cycles`` of the weight-stationary engine.

        The first pass's weights load in ``ws_fold_groups`` cycles, then passes start
        ``ws_pass_period(m)`` apart (the next pass's weights load during the last
        ``ws_fold_groups`` cycles of the current one); the last row of the last pass
        leaves the bottom ``ws_bottom_delay`` cycles after its issue and column C-1
        writes it C-1 cycles later.
        """
        self.check_gemm(m, k, n)
        passes = self.ws_passes(k, n)
        return (self.issue_latency + self.ws_fold_groups
                + (passes - 1) * self.ws_pass_period(m) + m - 1
                + self.ws_bottom_delay + self.cols - 1)

    @property
    def ws_acc_depth(self):
        """Words per column of the weight-stationary accumulator memory (one per row)."""
        return self.m_max

    # -- engine buffers and ports (hw.engine.Engine and the manifest read these) -------------

    @property
    def a_data_depth(self):
        """Words per A data bank: ``m_tiles_max * groups_max`` (one group per word)."""
        return self.m_tiles_max * self.groups_max

    @property
    def a_scale_depth(self):
        """Words per A scale bank (MX only): ``m_tiles_max * blocks_max``."""
        return self.m_tiles_max * self.blocks_max if self.scaled else 0

    @property
    def w_data_depth(self):
        """Words per W data bank: ``n_tiles_max * groups_max``."""
        return self.n_tiles_max * self.groups_max

    @property
    def w_scale_depth(self):
        """Words per W scale bank (MX only): ``n_tiles_max * blocks_max``."""
        return self.n_tiles_max * self.blocks_max if self.scaled else 0

    @property
    def c_depth(self):
        """Words of the C buffer: ``m_max * n_tiles_max``, each C lanes of 32 bits."""
        return self.m_max * self.n_tiles_max

    @property
    def host_buffers(self):
        """The buffers the host writes (and C, which it reads): name -> ``(banks, depth,
        word bits)``, in the order the engines build them (:func:`hw.engine.host_buffers`)."""
        out = {"a_data": (self.rows, self.a_data_depth, self.a_group_bits),
               "w_data": (self.cols, self.w_data_depth, self.w_group_bits)}
        if self.scaled:
            out["a_scale"] = (self.rows, self.a_scale_depth, self.scale_bits)
            out["w_scale"] = (self.cols, self.w_scale_depth, self.scale_bits)
        out["c"] = (self.cols, self.c_depth, self.acc_bits)
        return out

    @property
    def host_buffer_bits(self):
        """Total bits of :attr:`host_buffers`; bounded by :data:`MAX_BUFFER_BITS`."""
        return sum(banks * depth * width for banks, depth, width in self.host_buffers.values())

    @property
    def wr_bank_bits(self):
        return max(1, (max(self.rows, self.cols) - 1).bit_length())

    @property
    def wr_addr_bits(self):
        deepest = max(self.a_data_depth, self.a_scale_depth, self.w_data_depth,
                      self.w_scale_depth)
        return max(1, (deepest - 1).bit_length())

    @property
    def wr_data_bits(self):
        return max(self.a_group_bits, self.w_group_bits, self.scale_bits)

    @property
    def rd_addr_bits(self):
        return max(1, (self.c_depth - 1).bit_length())

    @property
    def c_word_bits(self):
        return self.acc_bits * self.cols

    @property
    def m_bits(self):
        return self.m_max.bit_length()

    @property
    def k_bits(self):
        return self.k_max.bit_length()

    @property
    def n_bits(self):
        return self.n_max.bit_length()

    @property
    def counter_bits(self):
        """Width of the performance counters."""
        return 48
