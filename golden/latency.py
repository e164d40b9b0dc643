"""Pipeline latencies of the hardware components, in cycles: the one table.

:class:`golden.Config`'s schedule reads it; each ``hw`` component exposes its own entry as
``latency`` and asserts, while it builds, that it has exactly that many register stages
(golden may not import hw, so the table lives here).
"""

__all__ = ["LATENCY"]

#: Component -> cycles.
LATENCY = {
    "issue": 1,          # hw.host.RunControl: start registers the shape, then issue
    "buffer_read": 1,    # hw.host.EngineBase buffers: synchronous read port
    "pe_mx": 4,          # hw.pe.PE, MX: products, block acc., term, binary32 acc. regs
    "pe_int8": 2,        # hw.pe.PE, int8: products, int32 accumulator
    "ws_pe": 1,          # hw.ws_pe.WSPE: products plus the registered psum adder
    "ws_block_end": 2,   # hw.ws_pe.WSBlockEnd: term and output registers
    "block_convert": 3,  # hw.binary32.BlockConverter: register stages inside the unit
    "f32_add": 6,        # hw.binary32.Float32Adder: register stages inside the unit
    # pe_mx and ws_block_end count the stages around the units; golden.Config adds the
    # units' own (the OS accumulator's adder at most groups_per_block - 1, see
    # Config.acc_add_stages).
}
