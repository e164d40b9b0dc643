"""nmmx area estimation with Yosys."""
