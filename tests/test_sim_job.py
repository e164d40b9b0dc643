"""sim.job: the runner/testbench files round-trip every field, limbs included."""

import numpy as np

from golden import Config
from sim.job import Job, JobResult, SimInput, SimOutput, limbs, words_from_limbs


def test_limbs_round_trip():
    words = np.array([0, 1, (1 << 64) - 1, 1 << 64, (3 << 127) | 5], dtype=object)
    got = limbs(words, 130)
    assert got.shape == (5, 3) and got.dtype == np.uint64
    assert got[4].tolist() == [5, 1 << 63, 1]
    assert words_from_limbs(got) == words.tolist()
    small = limbs(np.array([7, 9], np.uint64), 8)
    assert small.shape == (2, 1) and words_from_limbs(small) == [7, 9]


def test_input_and_output_round_trip(tmp_path):
    config = Config(rows=2, cols=3, dataflow="ws", m_max=8, k_max=64, n_max=8)
    job = Job(shape=(3, 40, 5), limit=1234, sel=np.array([0, 2], np.int64),
              bank=np.array([1, 0], np.int64), addr=np.array([7, 3], np.int64),
              data=limbs(np.array([1 << 70, 3], dtype=object), 72),
              expect=np.arange(15, dtype=np.uint32).reshape(3, 5))
    src = SimInput(config=config, hdl_clock=False, counters=("cnt_a", "cnt_b"),
                   jobs=(job, job))
    src.save(tmp_path / "in.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["in.npz"]
    back = SimInput.load(tmp_path / "in.npz")
    assert back.config == config and back.hdl_clock is False
    assert back.counters == ("cnt_a", "cnt_b") and len(back.jobs) == 2
    for got in back.jobs:
        assert got.shape == (3, 40, 5) and got.limit == 1234
        for key in ("sel", "bank", "addr", "data", "expect"):
            np.testing.assert_array_equal(getattr(got, key), getattr(job, key))
        assert words_from_limbs(got.data) == [1 << 70, 3]

    res = JobResult(c=np.full((3, 5), 0x7FC00000, np.uint32), counters=(10, 20, 3, 1),
                    seconds=0.25, sim_cycles=77, load_seconds=0.5, mismatches=2)
    SimOutput(results=(res,), hung=True).save(tmp_path / "out.npz")
    out = SimOutput.load(tmp_path / "out.npz")
    assert out.hung is True and len(out.results) == 1
    r = out.results[0]
    np.testing.assert_array_equal(r.c, res.c)
    assert (r.counters, r.seconds, r.sim_cycles, r.load_seconds, r.mismatches) == (
        (10, 20, 3, 1), 0.25, 77, 0.5, 2)
    assert SimOutput.load(_saved(tmp_path, SimOutput(results=()))).results == ()


def _saved(tmp_path, obj):
    path = tmp_path / "empty.npz"
    obj.save(path)
    return path
