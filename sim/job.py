"""What the sim runner hands the cocotb testbench, and what it hands back.

:mod:`sim.run` (the parent process) precomputes every job with numpy and saves a
:class:`SimInput`; :mod:`sim.tb` (inside the simulator) loads it, drives the engine and
saves a :class:`SimOutput`; the parent loads that.  Both sides use these classes, so the
``.npz`` keys are defined here and nowhere else; files are written through
:func:`nmmx.files.atomic_open`.
"""

import json
from dataclasses import dataclass

import numpy as np

from golden.config import Config
from nmmx.files import atomic_open

__all__ = ["Job", "JobResult", "SimInput", "SimOutput", "words_from_limbs", "limbs"]


def limbs(data, bits):
    """Buffer words (uint64 or Python-int object array) as ``[words, limbs]`` uint64,
    limb 0 least significant, ``ceil(bits / 64)`` limbs (at least one)."""
    count = max(1, -(-bits // 64))
    out = np.zeros((len(data), count), np.uint64)
    if data.dtype != object:
        out[:, 0] = data
        return out
    vals = data.tolist()
    for q in range(count):
        out[:, q] = [(v >> (64 * q)) & 0xFFFFFFFFFFFFFFFF for v in vals]
    return out


def words_from_limbs(limbs):
    """Python ints from a ``[words, limbs]`` uint64 array (limb 0 least significant)."""
    limbs = np.asarray(limbs, dtype=np.uint64)
    cols = [limbs[:, q].tolist() for q in range(limbs.shape[1])]
    if len(cols) == 1:
        return cols[0]
    return [sum(v << (64 * q) for q, v in enumerate(vals)) for vals in zip(*cols)]


@dataclass(frozen=True)
class Job:
    """One engine run: load the buffers, start ``shape``, compare C with ``expect``.

    Members
    -------
    shape : (int, int, int)
        m, k, n of the run.
    limit : int
        Cycles to wait for ``done`` before declaring the engine hung.
    sel, bank, addr : numpy.ndarray of int64
        Write-port fields of each buffer word (:func:`golden.pack.pack_operands`).
    data : numpy.ndarray of uint64, shape [words, limbs]
        The words as little-endian 64-bit limbs (:func:`limbs`).
    expect : numpy.ndarray of uint32, shape [m, n]
        Golden result bit patterns.
    mode : int
        Value of a unified engine's ``mode`` input for the run (0 otherwise).
    """

    shape: tuple
    limit: int
    sel: np.ndarray
    bank: np.ndarray
    addr: np.ndarray
    data: np.ndarray
    expect: np.ndarray
    mode: int = 0

    _ARRAYS = ("sel", "bank", "addr", "data", "expect")


@dataclass(frozen=True)
class JobResult:
    """What the testbench saw for one :class:`Job`.

    Members
    -------
    c : numpy.ndarray of uint32, shape [m, n]
    counters : tuple of int
        The counter outputs, in :attr:`SimInput.counters` order.
    seconds, load_seconds : float
        Wall time of the run (start to ``done``) and of loading the buffers.
    sim_cycles : int
        Simulated cycles from start to ``done``.
    mismatches : int
        Elements of ``c`` that differ from the job's ``expect``.
    """

    c: np.ndarray
    counters: tuple
    seconds: float
    sim_cycles: int
    load_seconds: float
    mismatches: int


@dataclass(frozen=True)
class SimInput:
    """The testbench's input file: the engine's config, how it is clocked, the counter
    ports to read and the jobs to run in order."""

    config: Config
    hdl_clock: bool
    counters: tuple
    jobs: tuple

    def save(self, path):
        arrays = {"config": json.dumps(self.config.to_dict()), "hdl_clock": self.hdl_clock,
                  "counters": json.dumps(list(self.counters)), "jobs": len(self.jobs)}
        for j, job in enumerate(self.jobs):
            arrays[f"j{j}_shape"] = np.array(job.shape, np.int64)
            arrays[f"j{j}_limit"] = job.limit
            arrays[f"j{j}_mode"] = job.mode
            arrays.update({f"j{j}_{key}": getattr(job, key) for key in Job._ARRAYS})
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as f:
            jobs = tuple(Job(shape=tuple(int(v) for v in f[f"j{j}_shape"]),
                             limit=int(f[f"j{j}_limit"]), mode=int(f[f"j{j}_mode"]),
                             **{key: f[f"j{j}_{key}"] for key in Job._ARRAYS})
                         for j in range(int(f["jobs"])))
            return cls(config=Config.from_dict(json.loads(str(f["config"]))),
                       hdl_clock=bool(f["hdl_clock"]),
                       counters=tuple(json.loads(str(f["counters"]))), jobs=jobs)


@dataclass(frozen=True)
class SimOutput:
    """The testbench's output file: the result of each job that finished, in order, and
    whether the next one hung (then no later job ran)."""

    results: tuple
    hung: bool = False

    def save(self, path):
        arrays = {"results": len(self.results), "hung": self.hung}
        for j, r in enumerate(self.results):
            arrays.update({f"j{j}_c": r.c, f"j{j}_counters": np.array(r.counters, np.int64),
                           f"j{j}_seconds": r.seconds, f"j{j}_sim_cycles": r.sim_cycles,
                           f"j{j}_load_seconds": r.load_seconds,
                           f"j{j}_mismatches": r.mismatches})
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as f:
            results = tuple(JobResult(c=f[f"j{j}_c"],
                                      counters=tuple(int(v) for v in f[f"j{j}_counters"]),
                                      seconds=float(f[f"j{j}_seconds"]),
                                      sim_cycles=int(f[f"j{j}_sim_cycles"]),
                                      load_seconds=float(f[f"j{j}_load_seconds"]),
                                      mismatches=int(f[f"j{j}_mismatches"]))
                            for j in range(int(f["results"])))
            return cls(results=results, hung=bool(f["hung"]))
