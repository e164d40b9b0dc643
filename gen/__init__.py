"""nmmx generator: ``python -m gen`` turns a :class:`golden.Config` into Verilog plus a
JSON manifest."""
