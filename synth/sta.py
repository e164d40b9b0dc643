"""OpenSTA on a mapped netlist: a general runner and the register-to-register check.

Debian's ``opensta`` (the ``sta`` command, a 2019 snapshot) is what nmmx runs; it is
installed by ``tools/setup-system.sh``.  Its ``set_input_delay`` is broken, so nmmx
constrains **register to register only**: one ideal clock on the clock port, no input or
output delays, which leaves every path from a primary input or to a primary output
unconstrained.  No wire load model is set and nothing is placed, so every figure is
labelled :data:`LABEL`.

:func:`run_sta` runs any command list (``report_power`` for the energy flow later);
:func:`check_timing` runs the standard one and parses ``report_checks -path_delay max``.
The critical path is ``clock period - slack``: launch clock-to-Q, the logic, and the
capture flip-flop's setup time, i.e. the shortest period at which the path closes, so
``fmax = 1e6 / critical_path_ps`` MHz.
"""

import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["LABEL", "StaError", "sta_executable", "run_sta", "check_timing",
           "check_commands", "parse_checks"]

#: How every timing figure of this flow is to be read.
LABEL = "pre-layout, no wire load"


class StaError(RuntimeError):
    """OpenSTA is missing or failed; the message says which, with the log tail."""


def sta_executable(sta=None):
    """Path of the OpenSTA executable (``sta`` on ``PATH`` unless given)."""
    exe = shutil.which(str(sta) if sta is not None else "sta")
    if exe is None:
        raise StaError(f"OpenSTA ({sta or 'sta'}) was not found on PATH "
                       "(run tools/setup-system.sh as root to install Debian's opensta)")
    return exe


def run_sta(commands, cwd, sta=None, log_name="sta.log"):
    """Run an OpenSTA command list in ``cwd``; return its output text.

    The commands are written to ``sta.tcl`` in ``cwd`` (paths in them may be relative to
    it).  Any ``Error`` line, or a nonzero exit, raises :class:`StaError`.
    """
    cwd = Path(cwd)
    (cwd / "sta.tcl").write_text("\n".join(commands) + "\n")
    proc = subprocess.run([sta_executable(sta), "-no_init", "-no_splash", "-exit", "sta.tcl"],
                          cwd=cwd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    (cwd / log_name).write_text(out)
    if proc.returncode or re.search(r"^Error\b", out, re.M):
        raise StaError(f"OpenSTA failed (exit code {proc.returncode}):\n{out[-3000:]}")
    return out


def check_commands(liberty, netlist, top, clock_port, clock_ps, time_unit_ps):
    """The OpenSTA script of :func:`check_timing` (paths as given, period in library units)."""
    period = clock_ps / time_unit_ps
    return [
        f"read_liberty {liberty}",
        f"read_verilog {netlist}",
        f"link_design {top}",
        f"create_clock -name clk -period {period:.6g} [get_ports {{{clock_port}}}]",
        "report_checks -path_delay max -digits 6",
    ]


_START = re.compile(r"^Startpoint:\s*(\S+)(?:\s*\((.*)\))?", re.M)
_END = re.compile(r"^Endpoint:\s*(\S+)(?:\s*\((.*)\))?", re.M)
_ARRIVAL = re.compile(r"^\s*(-?[0-9.]+)\s+data arrival time", re.M)
_REQUIRED = re.compile(r"^\s*(-?[0-9.]+)\s+data required time", re.M)
_SLACK = re.compile(r"^\s*(-?[0-9.]+)\s+slack\s*\((MET|VIOLATED)\)", re.M)
_SETUP = re.compile(r"^\s*(-?[0-9.]+)\s+-?[0-9.]+\s+library setup time", re.M)


def parse_checks(text, time_unit_ps, clock_ps):
    """Figures of the worst path of a ``report_checks -path_delay max`` text, in ps.

    Returns ``None`` when the report has no constrained path (no register-to-register
    path in the design).
    """
    start, end = _START.search(text), _END.search(text)
    slack = _SLACK.search(text)
    if not (start and end and slack):
        if re.search(r"No paths found", text):
            return None
        raise StaError(f"The OpenSTA report has no path to parse:\n{text[-2000:]}")
    scale = time_unit_ps
    arrival = float(_ARRIVAL.search(text).group(1)) * scale
    required = float(_REQUIRED.search(text).group(1)) * scale
    slack_ps = float(slack.group(1)) * scale
    setup = _SETUP.search(text)
    return {
        "start_point": start.group(1),
        "start_kind": start.group(2) or "",
        "end_point": end.group(1),
        "end_kind": end.group(2) or "",
        "arrival_ps": round(arrival, 3),
        "required_ps": round(required, 3),
        "slack_ps": round(slack_ps, 3),
        # The report subtracts the setup time from the required time: its increment is -setup.
        "setup_ps": round(-float(setup.group(1)) * scale, 3) if setup else None,
        "critical_path_ps": round(clock_ps - slack_ps, 3),
    }


def check_timing(liberty, netlist, top, clock_ps, time_unit_ps, *, clock_port="clk",
                 cwd=None, sta=None):
    """Register-to-register worst path of a mapped netlist (see the module docstring).

    Parameters
    ----------
    liberty, netlist : path
        One liberty file (a set merged into one) and the mapped Verilog netlist.
    top : str
        Module to link.
    clock_ps : float
        Clock period; only the slack depends on it.
    time_unit_ps : float
        The liberty's time unit in ps (:attr:`synth.nldm.Library.time_unit_ps`).
    clock_port : str
        Top-level clock port (Amaranth's ``sync`` domain: ``clk``).
    cwd : path or None
        Directory to run in (default: the netlist's).

    Returns
    -------
    dict or None
        :func:`parse_checks` figures plus ``label``; ``None`` without a register-to-register
        path.
    """
    cwd = Path(cwd) if cwd is not None else Path(netlist).parent
    out = run_sta(check_commands(liberty, netlist, top, clock_port, clock_ps, time_unit_ps),
                  cwd, sta)
    res = parse_checks(out, time_unit_ps, clock_ps)
    if res is not None:
        res["label"] = LABEL
    return res
