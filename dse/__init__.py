"""nmmx design-space study: which point on the compression spectrum (N:M sparsity, MX
element formats, or both) gives the most throughput per area for the least error.

``python -m dse`` is the command line (see :mod:`dse.__main__`); :mod:`dse.sweep` holds
the points, their evaluation, the per-point cache and the executors; :mod:`dse.metrics`
the error metrics and the Pareto front; :mod:`dse.data` the weights and activations of
the error study; :mod:`dse.report` the CSV, Markdown and PNG outputs.
"""
