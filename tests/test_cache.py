"""Tests of the one hash-keyed cache (``nmmx.cache``) and of its three users: synth
(module results and design structures), sim (the Verilator build stamp) and dse (sweep
points).  Every fault must cost at most the caching, never the result: a bad entry is
rebuilt with one warning line, an unwritable cache directory warns once.
"""

import json
import os
import re
import subprocess

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth import Module

from dse import sweep
from dse.sweep import Settings, run_sweep
from golden.config import Config
from nmmx import cache as nmmx_cache
from nmmx.cache import Cache, DictOf, ListOf, Number, Optional, TupleOf, check_fields
from sim import build as sim_build
from synth import area, yosys

WARN_BAD = (r"^warning: ignoring the bad {name} cache entry '{path}': {reason}; "
            r"computing it again$")
WARN_UNWRITABLE = (r"^warning: the {name} cache '{root}' cannot be written \(.+\); "
                   r"continuing without caching$")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees the once-per-directory warning afresh."""
    monkeypatch.setattr(nmmx_cache, "_WARNED_UNWRITABLE", set())


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _envelope(cache, key, data):
    return {"cache": cache.name, "schema": cache.version, "key": key, "data": data}


#: Bad file contents, as functions of a good envelope: the reason each gives.
def _bad_files(good):
    data = good["data"]
    first = next(iter(data))
    return {
        "list": (json.dumps([good]), "it holds a list, not an object"),
        "null": ("null", "it holds null, not an object"),
        "missing field": (json.dumps({**good, "data": {k: v for k, v in data.items()
                                                       if k != first}}),
                          f"field '{first}' is missing"),
        "mistyped field": (json.dumps({**good, "data": {
            **data, first: 7 if isinstance(data[first], str) else "x"}}),
                           f"field '{first}' is not .+"),
        "truncated": (json.dumps(good)[:-7], "it is not valid JSON"),
        "empty": ("", "it is empty"),
        "other schema": (json.dumps({**good, "schema": good["schema"] + 1}),
                         f"its schema is {good['schema'] + 1}, not {good['schema']}"),
        "other key": (json.dumps({**good, "key": "elsewhere"}),
                      "its key is 'elsewhere', not .+"),
    }


BAD_KINDS = list(_bad_files({"schema": 1, "data": {"a": 1}}))


def _unwritable(tmp_path):
    """A directory path that can never be created, even as root: it is under a file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file\n")
    return blocker / "cache"


# -- the helper --------------------------------------------------------------------------------

TABLE = {"n": int, "x": Number, "s": str, "flags": ListOf(bool),
         "groups": DictOf({"ff": Number, "bits": Optional(ListOf(Number))}),
         "pair": TupleOf(str, int), "either": (str, type(None))}
GOOD = {"n": 3, "x": 1.5, "s": "a", "flags": [True], "groups": {"g": {"ff": 2}},
        "pair": ["p", 4], "either": None}


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"n": 3.0}, "field 'n' is not an integer"),
    ({"n": True}, "field 'n' is not an integer"),
    ({"x": False}, "field 'x' is not a number"),
    ({"flags": [True, 1]}, "field 'flags[1]' is not a boolean"),
    ({"groups": {"g": {}}}, "field 'groups.g.ff' is missing"),
    ({"groups": {"g": {"ff": 1, "bits": [1, "2"]}}}, "field 'groups.g.bits[1]' is not a number"),
    ({"groups": []}, "field 'groups' is not an object"),
    ({"pair": ["p", 4, 5]}, "field 'pair' is not a list of 2"),
    ({"pair": ["p", "4"]}, "field 'pair[1]' is not an integer"),
    ({"either": 1}, "field 'either' is not a string or null"),
])
def test_field_table(change, problem):
    assert check_fields({**GOOD, **change}, TABLE) == problem


def test_field_table_reports_a_missing_field():
    data = dict(GOOD)
    del data["s"]
    assert check_fields(data, TABLE) == "field 's' is missing"


def test_round_trip_and_key(tmp_path, capsys):
    c = Cache(tmp_path, name="test", version=3, fields=TABLE,
              layout=lambda key: f"{key[:2]}/{key}.json")
    key = c.digest("what determines the entry")
    assert re.fullmatch(r"[0-9a-f]{24}", key)
    # The schema version is part of every key.
    assert Cache(tmp_path, name="test", version=4, fields=TABLE).digest(
        "what determines the entry") != key
    assert c.get(key) is None                       # a miss is silent
    assert c.put(key, GOOD) is True
    assert c.path(key) == tmp_path / key[:2] / f"{key}.json"
    assert json.loads(c.path(key).read_text()) == _envelope(c, key, GOOD)
    assert c.get(key) == GOOD
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_entry_warns_once_and_is_rebuilt(kind, tmp_path, capsys):
    c = Cache(tmp_path, name="test", version=3, fields=TABLE)
    key = c.digest("k")
    text, reason = _bad_files(_envelope(c, key, GOOD))[kind]
    c.path(key).write_text(text)
    assert c.get(key) is None
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_BAD.format(name="test", path=re.escape(str(c.path(key))),
                                    reason=reason), line), line
    assert c.put(key, GOOD) and c.get(key) == GOOD


def test_data_that_breaks_its_table_is_not_written(tmp_path, capsys):
    c = Cache(tmp_path, name="test", version=1, fields=TABLE)
    assert c.put("k", {**GOOD, "n": "three"}) is False
    assert not c.path("k").exists()
    assert _lines(capsys.readouterr().err) == [
        "warning: not caching the test entry k: field 'n' is not an integer"]


def test_unwritable_directory_warns_once(tmp_path, capsys):
    root = _unwritable(tmp_path)
    c = Cache(root, name="test", version=1, fields=TABLE)
    assert c.put("a", GOOD) is False and c.put("b", GOOD) is False
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_UNWRITABLE.format(name="test", root=re.escape(str(root))), line)
    assert c.get("a") is None and capsys.readouterr().err == ""


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs: root ignores permission bits, but not a read-only mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    d = tmp_path / "ro"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield d
    subprocess.run(["umount", str(d)], check=True)


def test_read_only_mount_warns_once(read_only_dir, capsys):
    c = Cache(read_only_dir, name="test", version=1, fields=TABLE)
    assert c.put("a", GOOD) is False and c.put("b", GOOD) is False
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_UNWRITABLE.format(name="test", root=re.escape(str(read_only_dir))),
                    line), line
    assert "Read-only file system" in line


# -- synth -------------------------------------------------------------------------------------

class _Mul(wiring.Component):
    def __init__(self):
        super().__init__({"x": In(4), "y": In(4), "p": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self.x * self.y)
        return m


@pytest.fixture(scope="module")
def synth_reference(tmp_path_factory):
    """``_Mul`` synthesized once into a cache that the tests copy."""
    root = tmp_path_factory.mktemp("synth_ref")
    report = area.synthesize(_Mul(), name="mul", cache=root, design_key="mul")
    return root, report


def _copy_cache(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def _entry(root, pattern):
    (path,) = root.glob(pattern)
    return path


def _figures(report):
    return {k: report[k] for k in ("logic_ge", "total_ge", "transistors", "buffer_bits")}


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_synth_bad_module_entry_is_synthesized_again(kind, synth_reference, tmp_path,
                                                     capsys):
    ref_root, ref = synth_reference
    root = _copy_cache(ref_root, tmp_path / "c")
    path = _entry(root, "[0-9a-f][0-9a-f]/*.json")
    good = json.loads(path.read_text())
    text, reason = _bad_files(good)[kind]
    path.write_text(text)
    r = area.synthesize(_Mul(), name="mul", cache=root, design_key="mul")
    assert r["synthesized"] == 1 and _figures(r) == _figures(ref)
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_BAD.format(name="synth module", path=re.escape(str(path)),
                                    reason=reason), line), line
    assert json.loads(path.read_text()) == good       # rewritten, whole and valid


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_synth_bad_design_entry_is_elaborated_again(kind, synth_reference, tmp_path,
                                                    capsys, monkeypatch):
    ref_root, ref = synth_reference
    root = _copy_cache(ref_root, tmp_path / "c")
    path = _entry(root, "designs/*.json")
    good = json.loads(path.read_text())
    text, reason = _bad_files(good)[kind]
    path.write_text(text)

    def no_yosys(*args, **kwargs):
        raise AssertionError("the module results are cached: Yosys must not run")
    monkeypatch.setattr(yosys, "run_yosys", no_yosys)
    r = area.synthesize(_Mul(), name="mul", cache=root, design_key="mul")
    assert r["synthesized"] == 0 and _figures(r) == _figures(ref)
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_BAD.format(name="synth design", path=re.escape(str(path)),
                                    reason=reason), line), line
    assert json.loads(path.read_text()) == good


def test_synth_inconsistent_design_entry_is_elaborated_again(synth_reference, tmp_path,
                                                             capsys):
    """Well typed but wrong: a child that is not among the modules."""
    ref_root, ref = synth_reference
    root = _copy_cache(ref_root, tmp_path / "c")
    path = _entry(root, "designs/*.json")
    good = json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["data"]["modules"]["mul"][1] = [["u0", "nowhere"]]
    path.write_text(json.dumps(bad))
    r = area.synthesize(_Mul(), name="mul", cache=root, design_key="mul")
    assert _figures(r) == _figures(ref)
    (line,) = _lines(capsys.readouterr().err)
    assert line.endswith("module 'mul' instantiates the unknown module 'nowhere'; "
                         "computing it again"), line
    assert json.loads(path.read_text()) == good


def test_synth_unwritable_cache_still_returns_the_result(synth_reference, tmp_path, capsys):
    _ref_root, ref = synth_reference
    root = _unwritable(tmp_path)
    r = area.synthesize(_Mul(), name="mul", cache=root, design_key="mul")
    assert r["synthesized"] == 1 and _figures(r) == _figures(ref)
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_UNWRITABLE.format(name="synth module", root=re.escape(str(root))),
                    line), line


def test_synth_cli_prints_the_table_with_an_unwritable_cache(tmp_path, monkeypatch, capsys):
    from synth import __main__ as cli
    root = _unwritable(tmp_path)
    monkeypatch.setenv("NMMX_CACHE_DIR", str(root))
    assert cli.run_cli(cli.main, ["--top", "pe", "--format", "mxint2", "--sparsity",
                                  "1:1"]) == 0
    out, err = capsys.readouterr()
    assert "logic total" in out and "one PE by function" in out
    (line,) = _lines(err)
    assert re.match(WARN_UNWRITABLE.format(name="synth module", root=re.escape(str(root))),
                    line), line


# -- dse ---------------------------------------------------------------------------------------

def _fake_area(config, top="engine"):
    logic = 100.0 * config.pes
    return {"total_ge": logic + 10.0, "logic_ge": logic, "buffer_bits": 4, "buffer_ge": 6.0,
            "transistors": 400 * config.pes, "yosys_seconds": 0.0,
            "pe_breakdown": {"multipliers": 100.0}, "modules": {}}


_DSE_CONFIGS = [Config(rows=1, cols=1, a_format="mxint2", w_format="mxint2", sparsity=(1, 1),
                       m_max=8, k_max=64, n_max=8),
                Config(rows=1, cols=2, a_format="mxint2", w_format="mxint2", sparsity=(1, 2),
                       m_max=8, k_max=64, n_max=8)]
_DSE_SETTINGS = Settings(gemms=((8, 64, 8), (4, 32, 4)), eval_shape=(4, 64, 4))


def _sweep(out):
    return run_sweep(_DSE_CONFIGS, _DSE_SETTINGS, out, area_fn=_fake_area, progress=False)


def test_dse_fresh_points_are_read_back(tmp_path, capsys):
    first = _sweep(tmp_path)
    assert first.evaluated == 2 and first.failures == []
    again = _sweep(tmp_path)
    assert again.evaluated == 0 and again.cached == 2
    assert json.dumps(again.rows) == json.dumps(first.rows)     # NaN != NaN
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_dse_bad_point_is_evaluated_again(kind, tmp_path, capsys):
    first = _sweep(tmp_path)
    key = sweep.point_key(_DSE_CONFIGS[0], _DSE_SETTINGS)
    path = tmp_path / "points" / f"{key}.json"
    good = json.loads(path.read_text())
    text, reason = _bad_files(good)[kind]
    path.write_text(text)
    capsys.readouterr()
    again = _sweep(tmp_path)
    assert again.evaluated == 1 and again.cached == 1 and again.failures == []
    assert again.rows[0]["total_ge"] == first.rows[0]["total_ge"]
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_BAD.format(name="dse point", path=re.escape(str(path)),
                                    reason=reason), line), line
    assert json.loads(path.read_text())["data"]["key"] == key


def test_dse_point_missing_a_gemm_field_is_evaluated_again(tmp_path, capsys):
    _sweep(tmp_path)
    key = sweep.point_key(_DSE_CONFIGS[1], _DSE_SETTINGS)
    path = tmp_path / "points" / f"{key}.json"
    entry = json.loads(path.read_text())
    del entry["data"]["cycles@4x32x4"]
    path.write_text(json.dumps(entry))
    capsys.readouterr()
    assert _sweep(tmp_path).evaluated == 1
    assert "field 'cycles@4x32x4' is missing" in capsys.readouterr().err


def test_dse_unwritable_points_keep_their_rows(tmp_path, capsys):
    (tmp_path / "points").write_text("not a directory\n")
    res = _sweep(tmp_path)
    assert res.evaluated == 2 and res.failures == [] and all(res.rows)
    assert res.rows[1]["logic_ge"] == 200.0
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_UNWRITABLE.format(
        name="dse point", root=re.escape(str(tmp_path / "points"))), line), line


# -- sim ---------------------------------------------------------------------------------------

_STAMP = {"toplevel": "top", "build_seconds": 1.5, "warnings": [], "public": "depth1",
          "args": ["-Wno-fatal"]}


@pytest.fixture
def build_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NMMX_BUILD_DIR", str(tmp_path / "sim"))
    return tmp_path / "sim"


def test_sim_stamp_round_trip(build_root):
    key = "0123456789abcdef0123"
    (build_root / key).mkdir(parents=True)
    (build_root / key / "top").write_text("model binary\n")
    assert sim_build._stamps().put(key, _STAMP)
    assert sim_build._read_stamp(build_root / key, key, "top") == _STAMP
    # No model binary, or another top: not a finished build of this design.
    assert sim_build._read_stamp(build_root / key, key, "other") is None
    (build_root / key / "top").unlink()
    assert sim_build._read_stamp(build_root / key, key, "top") is None


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_sim_bad_stamp_is_not_used(kind, build_root, capsys):
    key = "0123456789abcdef0123"
    (build_root / key).mkdir(parents=True)
    (build_root / key / "top").write_text("model binary\n")
    stamps = sim_build._stamps()
    text, reason = _bad_files(_envelope(stamps, key, _STAMP))[kind]
    stamps.path(key).write_text(text)
    assert sim_build._read_stamp(build_root / key, key, "top") is None
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_BAD.format(name="sim build", path=re.escape(str(stamps.path(key))),
                                    reason=reason), line), line


def test_sim_unwritable_stamp_warns_once(tmp_path, monkeypatch, capsys):
    root = _unwritable(tmp_path)
    monkeypatch.setenv("NMMX_BUILD_DIR", str(root))
    assert sim_build._stamps().put("k1", _STAMP) is False
    assert sim_build._stamps().put("k2", _STAMP) is False
    (line,) = _lines(capsys.readouterr().err)
    assert re.match(WARN_UNWRITABLE.format(name="sim build", root=re.escape(str(root))),
                    line), line


def test_sim_bad_stamp_rebuilds_the_model(build_root, tmp_path, capsys):
    """A real build: a stamp turned into a list makes the next call build again (and
    write a good stamp), never crash or reuse the half-known build."""
    from sim.selftest import write_countdown_verilog
    src = tmp_path / "countdown.v"
    top = write_countdown_verilog(src, width=8)
    cold = sim_build.build_model(src, top)
    assert not cold.cached
    stamp = cold.build_dir / sim_build._STAMP
    stamp.write_text("[]")
    capsys.readouterr()
    again = sim_build.build_model(src, top)
    assert not again.cached and again.key == cold.key
    assert "it holds a list, not an object" in capsys.readouterr().err
    assert sim_build.build_model(src, top).cached
