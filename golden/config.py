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
from .schedule import SCHEDULES

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
    tile_skip : bool
        The controller skips weight tiles whose every stored value is zero and writes
        their outputs as zero (:mod:`golden.skip`; ``docs/architecture.md``, "Tile
        skipping").  Output stationary only.  Off, the engine is the one without the
        feature, bit for bit, and :meth:`to_dict` leaves the key out.

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
    tile_skip: bool = False

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
        # Tile skipping: a switch of the OS controller (golden.skip, OSSchedule).
        if not isinstance(self.tile_skip, bool):
            raise TypeError(f"tile_skip must be True or False, not {self.tile_skip!r}")
        if self.tile_skip and self.dataflow is not Dataflow.OS:
            raise ValueError(f"tile_skip is built only for the output-stationary dataflow, "
                             f"not dataflow={self.dataflow.value}")
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
        skip = "_skip" if self.tile_skip else ""
        return (f"nmmx_{self.dataflow.value}_{self.rows}x{self.cols}_{fmt}_"
                f"{self.n_keep}of{self.m_group}{skip}")

    def to_dict(self):
        """The fields as plain JSON values.  ``tile_skip`` appears only when on, so the
        manifests, cache keys and sweep keys of engines without it stay what they were."""
        d = asdict(self)
        d["sparsity"] = f"{self.n_keep}:{self.m_group}"
        d["dataflow"] = self.dataflow.value
        if not self.tile_skip:
            del d["tile_skip"]
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

    # -- latencies and the schedule ----------------------------------------------------------
    # The latencies come from golden.latency.LATENCY; the cycle model of each dataflow is
    # golden.schedule (config.schedule); the sim regressions assert its counters every run.

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
    def tile_fifo_depth(self):
        """Tiles whose drain is pending while later tiles issue (a tile is drained
        ``buffer_read_latency + rows - 1 + pe_latency`` cycles after its last group, and
        tiles start at least ``rows`` cycles apart)."""
        lag = self.buffer_read_latency + self.rows - 1 + self.pe_latency
        return 1 << (ceil(lag / self.rows) + 1).bit_length()

    def groups(self, k):
        """Groups G streamed per tile for a run-time K (K padded to whole blocks)."""
        return self.padded_k(k) // self.m_group

    @property
    def schedule(self):
        """The exact cycle model of this config's engine: a
        :class:`golden.schedule.OSSchedule` or :class:`golden.schedule.WSSchedule`
        (``cycles``, ``issued``, ``stall``, ``tiles``, utilization, SCALE-Sim, formulas)."""
        return SCHEDULES[self.dataflow.value](self)

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

    # -- weight-stationary array geometry (hw.ws.WSEngine; its timing is WSSchedule) --------
    # A weight pass holds ws_fold_groups K-groups of one column tile in the PEs; block-end
    # units sit below the rows where MX blocks end.

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

    @property
    def ws_inject_row(self):
        """Row below which a column's state from the previous pass joins the new partial
        sums: the first block-end row (MX: the binary32 partial starts there, and a
        carried exact partial joins the bottom block-end unit), or the bottom (int8)."""
        if self.scaled:
            return self.ws_block_end_rows[0]
        return self.ws_fold_groups - 1

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
