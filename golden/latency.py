"""Pipeline latencies of the hardware components, in cycles: the one table.

:class:`golden.Config`'s schedule reads it; each ``hw`` component exposes its own entry as
``latency`` and asserts, while it builds, that it has exactly that many register stages
(golden may not import hw, so the table lives here).
"""

__all__ = ["LATENCY", "RESOLVE_STAGE_BITS"]

#: Component -> cycles.
LATENCY = {
    "issue": 1,          # hw.host.RunControl: start registers the shape, then issue
    "buffer_read": 1,    # hw.host.EngineBase buffers: synchronous read port
    "pe_mx": 3,          # hw.pe.PE, MX: block acc. (carry-save, the products added to
                         # it directly), term, binary32 acc. regs
    "pe_int8": 3,        # hw.pe.PE, int8: product sum, int32 accumulator's two halves
    "ws_pe": 1,          # hw.ws_pe.WSPE: the registered psum adder
    "select": 1,         # hw.pe.sparse_products: selected codes (+ weights), sparse only
    "multiply": 1,       # hw.pe.sparse_products: the N products and their flags
    "ws_block_end": 2,   # hw.ws_pe.WSBlockEnd: term and output registers
    "ws_join": 1,        # hw.ws_array.WSArray: the registered join of a column's
                         # carried state (int8 sum, MX exact partial block)
    "block_convert": 3,  # hw.binary32.BlockConverter: register stages inside the unit
    "f32_add": 6,        # hw.binary32.Float32Adder: register stages inside the unit
    # pe_mx, pe_int8, ws_pe and ws_block_end count the stages around the units;
    # golden.Config adds the block sum's resolve stages (Config.resolve_stages), the
    # front end's (Config.front_stages: select when sparse, then
    # multiply) and the units' own (the OS accumulator's adder at most
    # groups_per_block - 1, see Config.acc_add_stages).
}

#: The widest block sum whose carry-save rows one register stage adds, and the slice
#: of the two-stage carry-select adder that adds wider ones (a prefix adder in OSU018:
#: 20 FO4 at 16 bits; in a PE 51 FO4 at 41, 63 at 69): ``hw.adder.CarrySelectAdder``,
#: :attr:`golden.Config.resolve_stages`.
RESOLVE_STAGE_BITS = 16
