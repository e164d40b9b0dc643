"""The engines' performance counters: the one list of their names and what each counts.

Every consumer takes the list from here: the engines' ports (``hw.host``), the manifest
(``gen``), the SoC register map (:mod:`golden.regmap`), the testbenches and ``sim``'s
result JSON.  The expected value of every counter is :func:`expected` (the cycle model
of ``config.schedule``), which the regressions assert on every run.

Two kinds of counter:

- the run counters :data:`RUN_COUNTERS` (cycles, issued slots, stalls, tiles), present in
  every engine;
- the buffer-access counters :data:`ACCESS_COUNTERS`: word reads or writes of one
  buffer by the engine during a run, with the meaning of
  :meth:`golden.schedule.Schedule.buffer_accesses`.  A counter exists only where its
  buffer does: an ``int8`` engine has no scale buffers, so it has no ``cnt_rd_as`` /
  ``cnt_rd_ws`` (rather than ports that are always 0), and only the weight-stationary
  engine has the accumulator memories (``cnt_rd_acc``, ``cnt_wr_acc``).  The host's
  buffer writes and C reads happen while the engine is idle (the counters are cleared
  on ``start``), so they are not counted in the RTL: they follow from the host
  protocol, and the model's figures for them are the ones reported.
"""

__all__ = ["RUN_COUNTERS", "ACCESS_COUNTERS", "names", "access_names", "expected",
           "register_stem"]

#: The run counters, in port order: counter -> schedule method giving its value.
RUN_COUNTERS = {"cnt_cycles": "cycles", "cnt_issued": "issued", "cnt_stall": "stall",
                "cnt_tiles": "tiles"}

#: The buffer-access counters, in port order: counter -> (buffer, "reads" or "writes")
#: of :meth:`golden.schedule.Schedule.buffer_accesses`.
ACCESS_COUNTERS = {
    "cnt_rd_a": ("a_data", "reads"),
    "cnt_rd_w": ("w_data", "reads"),
    "cnt_rd_as": ("a_scale", "reads"),
    "cnt_rd_ws": ("w_scale", "reads"),
    "cnt_wr_c": ("c", "writes"),
    "cnt_rd_acc": ("acc", "reads"),
    "cnt_wr_acc": ("acc", "writes"),
}


def access_names(config):
    """The buffer-access counters of ``config``'s engine, in port order: those of
    :data:`ACCESS_COUNTERS` whose buffer the engine has (the buffers of
    ``config.schedule.buffer_accesses``)."""
    buffers = config.schedule.buffer_accesses(1, 1, 1)
    return tuple(name for name, (buf, _kind) in ACCESS_COUNTERS.items() if buf in buffers)


def names(config):
    """Every counter port of ``config``'s engine, in port order: the run counters, then
    :func:`access_names`."""
    return tuple(RUN_COUNTERS) + access_names(config)


def expected(config, m, k, n, skip=None, *, schedule=None):
    """The exact value of every counter of :func:`names` after one ``m x k x n`` run:
    counter -> int, from ``config.schedule`` (``skip``: the run's weight-tile mask when
    the engine has ``tile_skip``, :func:`golden.skip.weight_tile_mask`).  ``schedule``
    replaces it: a unified engine's mode runs with the unified PE's latency
    (``config.schedule.mode(spec)`` of the unified config, for its one-mode config)."""
    s = config.schedule if schedule is None else schedule
    out = {name: getattr(s, method)(m, k, n, skip) for name, method in RUN_COUNTERS.items()}
    acc = s.buffer_accesses(m, k, n, skip)
    for name in access_names(config):
        buf, kind = ACCESS_COUNTERS[name]
        out[name] = acc[buf][kind]
    return out


def register_stem(name):
    """The SoC register stem of counter ``name``: ``cnt_rd_a`` -> ``RD_A``."""
    assert name.startswith("cnt_"), name
    return name[len("cnt_"):].upper()
