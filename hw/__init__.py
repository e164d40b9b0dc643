"""nmmx hardware: Amaranth components of the sparse MX GEMM engine."""
