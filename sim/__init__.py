"""nmmx verification: cocotb on Verilator, bit-exact against golden."""
