"""Error metrics and the Pareto front of the design-space study.

Every error figure compares an approximate result (what the engine computes, or a
dequantized effective operand) against a float64 reference.  The metrics are kept as
sums as well as ratios, so that several GEMMs (weight tensors, activation kinds) can be
pooled into one figure without averaging ratios.
"""

import math

import numpy as np

__all__ = ["ErrorStats", "error_metrics", "pareto_front"]


class ErrorStats:
    """Pooled error statistics of one or more (reference, approximation) pairs.

    Members
    -------
    signal : float
        Sum of squared reference values.
    noise : float
        Sum of squared differences.
    max_abs : float
        Largest absolute difference.
    count : int
        Number of compared values.
    """

    def __init__(self):
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.count = 0

    def add(self, ref, approx):
        """Pool one more pair of equally shaped arrays (compared in float64)."""
        ref = np.asarray(ref, dtype=np.float64)
        approx = np.asarray(approx, dtype=np.float64)
        if ref.shape != approx.shape:
            raise ValueError(f"Error metrics need equal shapes, not {ref.shape} and "
                             f"{approx.shape}")
        diff = approx - ref
        self.signal += float(np.sum(ref * ref))
        self.noise += float(np.sum(diff * diff))
        if diff.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(diff))))
        self.count += diff.size
        return self

    @property
    def rel_fro(self):
        """``||approx - ref||_F / ||ref||_F`` (0 when both are zero, inf for a zero
        reference with a non-zero difference)."""
        if self.noise == 0.0:
            return 0.0
        if self.signal == 0.0:
            return math.inf
        return math.sqrt(self.noise / self.signal)

    @property
    def sqnr_db(self):
        """Signal-to-quantization-noise ratio ``10 log10(signal / noise)`` in dB
        (inf when the difference is zero)."""
        if self.noise == 0.0:
            return math.inf
        if self.signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)

    def as_dict(self, prefix=""):
        return {f"{prefix}rel_fro": self.rel_fro, f"{prefix}max_abs": self.max_abs,
                f"{prefix}sqnr_db": self.sqnr_db}


def error_metrics(ref, approx):
    """Relative Frobenius error, max absolute error and SQNR of ``approx`` against ``ref``.

    Parameters
    ----------
    ref, approx : array_like
        Equally shaped arrays; both are compared in float64.

    Returns
    -------
    dict
        ``rel_fro``, ``max_abs`` and ``sqnr_db``.

    Raises
    ------
    ValueError
        The shapes differ.
    """
    return ErrorStats().add(ref, approx).as_dict()


def pareto_front(points, *, maximize, minimize):
    """Indices of the points that no other point dominates.

    A point dominates another when it is at least as good in both objectives and
    strictly better in one.  Points whose objectives are NaN never join the front.

    Parameters
    ----------
    points : sequence of dict
        One mapping per point.
    maximize, minimize : str
        Keys of the objective to maximize (e.g. throughput per area) and the one to
        minimize (e.g. error).

    Returns
    -------
    list of int
        Indices into ``points``, sorted by increasing ``maximize`` objective.
    """
    vals = [(float(p[maximize]), float(p[minimize])) for p in points]
    front = []
    for i, (gi, ei) in enumerate(vals):
        if math.isnan(gi) or math.isnan(ei):
            continue
        dominated = False
        for j, (gj, ej) in enumerate(vals):
            if j == i or math.isnan(gj) or math.isnan(ej):
                continue
            if gj >= gi and ej <= ei and (gj > gi or ej < ei):
                dominated = True
                break
        if not dominated:
            front.append(i)
    front.sort(key=lambda i: (vals[i][0], -vals[i][1]))
    return front
