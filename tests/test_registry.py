"""hw.registry: one table of the hardware classes of each dataflow, read by gen, synth and
the test harness."""

import ast
from pathlib import Path

import pytest

from golden import Config
from golden.config import Dataflow
from hw.array import Array
from hw.engine import Engine
from hw.pe import PE, PEInstance
from hw.registry import HARDWARE, hardware, pe_module_name
from hw.ws import WSArray, WSEngine, WSPE, WSPEInstance

ROOT = Path(__file__).resolve().parent.parent


def test_registry_classes():
    assert set(HARDWARE) == set(Dataflow)
    os_, ws = hardware(Config()), hardware(Config(dataflow="ws"))
    assert (os_.pe, os_.pe_reference, os_.array, os_.engine) == (PE, PEInstance, Array, Engine)
    assert (ws.pe, ws.pe_reference, ws.array, ws.engine) == (WSPE, WSPEInstance, WSArray,
                                                             WSEngine)
    assert pe_module_name("top") == "top_pe"


def test_registry_needs_a_config():
    with pytest.raises(TypeError, match=r"^hardware needs a golden\.Config, not 'ws'$"):
        hardware("ws")


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_synth_does_not_import_the_generator():
    # Neither the library nor the command line: the shared flags live in nmmx.flags.
    mods = {m for f in (ROOT / "synth").glob("*.py") for m in _imports(f)}
    assert not {m for m in mods if m == "gen" or m.startswith("gen.")}, mods
