"""The build/run flow of ``sim`` on the small self-test design (no engine needed)."""

import gc
import json
import os
import warnings

import pytest

from sim import build
from sim.build import build_model, run_cocotb
from sim.harness import build_harness, run_harness
from sim.selftest import Countdown, write_countdown_verilog
from sim.wrapper import TIMING_ARGS, WRAPPER_TOP, clock_wrapper, parse_ports


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """A private build root, so the cold/cached behaviour is observable."""
    root = tmp_path_factory.mktemp("simbuild")
    old = os.environ.get("NMMX_BUILD_DIR")
    os.environ["NMMX_BUILD_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("NMMX_BUILD_DIR")
    else:
        os.environ["NMMX_BUILD_DIR"] = old


@pytest.fixture(scope="module")
def countdown_v(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "countdown.v"
    top = write_countdown_verilog(path, width=24)
    return path, top


def _run(model, tmp_path, lengths, **kw):
    job, out = tmp_path / "job.json", tmp_path / "out.json"
    job.write_text(json.dumps({"lengths": lengths}))
    run_dir, ok = run_cocotb(model, "sim.selftest", **kw, extra_env={
        "NMMX_SELFTEST_IN": str(job), "NMMX_SELFTEST_OUT": str(out)})
    return run_dir, ok, json.loads(out.read_text())


def test_build_once_then_cached(build_dir, countdown_v, tmp_path):
    path, top = countdown_v
    cold = build_model(path, top)
    assert not cold.cached
    assert cold.build_dir.parent == build_dir
    assert (cold.build_dir / top).is_file()
    warm = build_model(path, top)
    assert warm.cached and warm.key == cold.key
    # A cached build runs neither verilator nor make: it is only a stamp check.
    assert warm.build_seconds < 0.5
    assert warm.cold_build_seconds == pytest.approx(cold.build_seconds)
    run_dir, ok, out = _run(warm, tmp_path, [7, 1, 300])
    assert ok
    assert [o["cnt_cycles"] for o in out] == [7, 1, 300]
    assert all(o["done"] == 1 for o in out)
    assert (run_dir / "results.xml").is_file()


def test_changed_verilog_or_flags_rebuilds(build_dir, countdown_v, tmp_path):
    path, top = countdown_v
    base = build_model(path, top)
    other = tmp_path / "countdown16.v"
    write_countdown_verilog(other, width=16)
    assert build_model(other, top).key != base.key
    assert build_model(path, top, public="flat-rw").key != base.key


def test_failing_cocotb_test_is_reported(build_dir, countdown_v, tmp_path):
    """The self-test asserts cnt_cycles == length; length 0 never finishes as asked
    (the design counts one cycle), so the cocotb test must fail and ok be False."""
    path, top = countdown_v
    model = build_model(path, top)
    _run_dir, ok, out = _run(model, tmp_path, [0])
    assert not ok
    assert out[0]["cnt_cycles"] != out[0]["length"]


def test_public_mode_is_checked(countdown_v):
    path, top = countdown_v
    with pytest.raises(ValueError, match=r"^public mode must be one of flat-rw, depth1, "
                                         r"not 'all'$"):
        build_model(path, top, public="all")


def test_build_error_names_the_log(build_dir, tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module broken(input clk; endmodule\n")
    with pytest.raises(RuntimeError, match=r"^Verilator build of broken failed"):
        build_model(bad, "broken")


def test_parse_ports_and_clock_wrapper(countdown_v):
    path, top = countdown_v
    ports = parse_ports(path.read_text(), top)
    assert ("clk", "input", 1) in ports
    assert ("length", "input", 24) in ports
    assert ("cnt_cycles", "output", 24) in ports
    text = clock_wrapper(top, ports)
    assert f"module {WRAPPER_TOP} (" in text
    assert "input wire [23:0] length" in text
    assert "always #5 clk = ~clk;" in text
    with pytest.raises(ValueError, match=r"^Verilog has no module named 'nope'$"):
        parse_ports(path.read_text(), "nope")
    with pytest.raises(ValueError, match=r"^Module 'countdown' has no 1-bit clock input "
                                         r"'clock'$"):
        clock_wrapper(top, ports, clock="clock")


def test_hdl_clock_wrapper_runs(build_dir, countdown_v, tmp_path):
    path, top = countdown_v
    wrap = tmp_path / "wrap.v"
    wrap.write_text(clock_wrapper(top, parse_ports(path.read_text(), top)))
    model = build_model([path, wrap], WRAPPER_TOP, extra_args=TIMING_ARGS)
    _run_dir, ok, out = _run(model, tmp_path, [5, 1000])
    assert ok
    assert [o["cnt_cycles"] for o in out] == [5, 1000]


def _vcd_values(path, signal):
    """Every value (as an int) the VCD file ``path`` records for ``signal``, in order."""
    codes, values, body = set(), [], False
    for line in path.read_text().splitlines():
        parts = line.split()
        if not body:
            # $var wire 24 ! cnt_cycles [23:0] $end
            if parts[:1] == ["$var"] and len(parts) >= 5 and parts[4] == signal:
                codes.add(parts[3])
            body = parts[:1] == ["$enddefinitions"]
        elif parts and parts[0][0] in "bB" and len(parts) == 2 and parts[1] in codes:
            values.append(int(parts[0][1:].replace("x", "0").replace("z", "0"), 2))
        elif parts and len(parts) == 1 and parts[0][0] in "01" and parts[0][1:] in codes:
            values.append(int(parts[0][0]))
    return codes, values


def test_waves_only_on_request(build_dir, countdown_v, tmp_path, monkeypatch):
    """A plain build is cached first, then waves are asked for: the traced build must be
    a different one (the bug: it reused the plain executable, which exits 255 on
    ``--trace``), and the trace must record the run."""
    path, top = countdown_v
    monkeypatch.delenv("WAVES", raising=False)
    plain = build_model(path, top)
    assert not plain.waves
    run_dir, ok, _out = _run(plain, tmp_path, [3])
    assert ok and not list(run_dir.glob("dump.*"))
    monkeypatch.setenv("WAVES", "1")
    mode = build.trace_mode()
    traced = build_model(path, top)
    assert traced.waves and traced.key != plain.key and not traced.cached
    run_dir, ok, out = _run(traced, tmp_path, [20])
    assert ok and out[0]["cnt_cycles"] == 20
    assert sorted(p.name for p in run_dir.glob("dump.*")) == [f"dump.{mode}"]
    dump = run_dir / f"dump.{mode}"
    if mode == "vcd":
        codes, values = _vcd_values(dump, "cnt_cycles")
        assert codes, "the VCD declares no cnt_cycles"
        # The counter really moved in the trace: it counts up to the length, 20.
        assert 20 in values and len(set(values)) > 10
    else:
        assert dump.read_bytes()[:1] == b"\x00"     # FST block type 0: header
        assert dump.stat().st_size > 1000
    # And back: the plain build is still the cached one, and writes no trace.
    monkeypatch.delenv("WAVES")
    again = build_model(path, top)
    assert again.cached and again.key == plain.key


def test_trace_mode_is_in_the_key(monkeypatch):
    """Off, VCD and FST builds of the same design never share a build directory; where
    the FST writer cannot be compiled (no lz4 headers) waves fall back to VCD."""
    monkeypatch.delenv("WAVES", raising=False)
    for fst in (False, True):
        monkeypatch.setattr(build, "fst_available", lambda: fst)
        assert build.trace_mode() == "off"
        assert build.trace_mode(True) == ("fst" if fst else "vcd")
        monkeypatch.setenv("WAVES", "1")
        assert build.trace_mode() == ("fst" if fst else "vcd")
        monkeypatch.delenv("WAVES")
    assert build.trace_args("off") == build.trace_args("vcd") == []
    assert "--trace-fst" in build.trace_args("fst")
    keys = {build._key("module m; endmodule", "m", build.trace_args(mode), mode)
            for mode in build.TRACE_MODES}
    assert len(keys) == 3
    with pytest.raises(ValueError, match=r"^trace mode must be one of off, vcd, fst, "
                                         r"not 'lxt'$"):
        build.trace_args("lxt")


def test_raw_harness_counts_cycles(build_dir, countdown_v):
    path, top = countdown_v
    exe, _seconds, cached = build_harness(path, top, {"length": 1000})
    assert not cached
    out = run_harness(exe, runs=3)
    assert out["cnt_cycles"] == 1000
    # start pulse + 1000 busy cycles (+ the cycle done needs to rise) per run
    assert 3 * 1000 <= out["cycles"] <= 3 * 1002
    assert out["cycles_per_second"] > 0
    assert build_harness(path, top, {"length": 1000})[2]


def test_countdown_signature():
    # Components that are built but never elaborated warn when collected; collect them
    # here, inside the filter, instead of in some later test.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*created but never used")
        dut = Countdown(width=12)
        assert dut.width == 12
        assert len(dut.length) == 12 and len(dut.cnt_cycles) == 12
        with pytest.raises(ValueError, match=r"^width must be between 1 and 64, not 0$"):
            Countdown(width=0)
        with pytest.raises(TypeError, match=r"^width must be a whole number, not '8'$"):
            Countdown(width="8")
        del dut
        gc.collect()
