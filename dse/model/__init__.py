"""The model study: a BERT-family sentence encoder run through the engine's exact numerics.

- :mod:`dse.model.checkpoint` loads a checkpoint directory offline;
- :mod:`dse.model.forward` is the numpy forward pass with a pluggable GEMM;
- :mod:`dse.model.methods` holds the pruning, quantization, smoothing and low-rank methods;
- :mod:`dse.model.study` evaluates points, caches them and writes the outputs.
"""
