"""Every command line's surface (issue 22.5): help text with defaults for every option, exit codes
in every --help, bash/zsh completion, phase progress on a terminal, JSON logs on the daemons."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Callable

import pytest

from k8s_offload.arp_proxy.cli import build_parser as arp_parser
from k8s_offload.cli.main import COMMAND_EXIT_CODES, EXIT_CODES, build_compile_parser, build_parser
from k8s_offload.cni.install import build_parser as install_parser
from k8s_offload.cni.server import build_parser as cni_server_parser
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.console import Progress, finish_cli, parsers, setup_logging
from k8s_offload.lab.cli import _parser as lab_parser
from k8s_offload.loader.cli import _parser as loader_parser
from k8s_offload.target.cli import build_parser as switch_parser
from tests.embedded_fixtures import NODE, SHOP

CLIS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "offload-compile": lambda: finish_cli(build_compile_parser(), EXIT_CODES, COMMAND_EXIT_CODES),
    "offload-compile COMMAND": lambda: finish_cli(build_parser(), EXIT_CODES, COMMAND_EXIT_CODES),
    "offload-loader": loader_parser,
    "offload-switch": switch_parser,
    "offload-arp-proxy": arp_parser,
    "offload-lab": lab_parser,
    "offload-cni install": install_parser,
    "offload-cni serve": cni_server_parser,
}
BUILT_IN = {"help", "version", "print_completion"}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.dest not in BUILT_IN
        and not isinstance(a, argparse._SubParsersAction)
        and a.help != argparse.SUPPRESS
    ]


@pytest.mark.parametrize("name", CLIS)
def test_every_option_has_help_with_its_default(name: str) -> None:
    for parser in parsers(CLIS[name]()):
        formatter = parser._get_formatter()
        for action in _options(parser):
            assert action.help, f"{parser.prog} {action.option_strings or action.dest}: no help text"
            shown = formatter._get_help_string(action) or ""  # type: ignore[attr-defined]
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in shown.lower(), f"{parser.prog} {action.option_strings}: default not shown"


@pytest.mark.parametrize("name", CLIS)
def test_every_help_lists_exit_codes(name: str) -> None:
    for parser in parsers(CLIS[name]()):
        text = parser.format_help()
        assert "exit codes:" in text and "  0 " in text and "  2 " in text, parser.prog


@pytest.mark.parametrize("shell", ["bash", "zsh"])
@pytest.mark.parametrize("name", [n for n in CLIS if " " not in n])
def test_completion_scripts(name: str, shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        CLIS[name]().parse_args(["--print-completion", shell])
    assert exc.value.code == 0
    script = capsys.readouterr().out
    assert name in script and "--help" in script


def test_compile_progress_names_each_phase_with_counts() -> None:
    out = io.StringIO()
    progress = Progress("offload-compile", stream=out, force=True)
    compile_sources([SHOP], NODE, progress=progress)
    progress("render", 1234, "bytes")
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["load", "ir", "passes and lowering", "render"]
    assert all(line.startswith("offload-compile: ") and " in " in line for line in lines)
    assert "objects" in lines[0] and "entities" in lines[2] and "1,234 bytes" in lines[3]


def test_progress_only_on_a_terminal_and_not_when_quiet() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, quiet, shown in ((io.StringIO(), False, False), (Tty(), True, False), (Tty(), False, True)):
        Progress("p", stream=stream, quiet=quiet)("load", 3, "objects")
        assert bool(stream.getvalue()) == shown


def test_json_logs(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("json")
        logging.getLogger("k8s_offload.test").warning("sync %s", "FAILED")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (
            line["level"] == "warning"
            and line["msg"] == "sync FAILED"
            and line["logger"] == "k8s_offload.test"
        )
    finally:
        root.handlers, _ = saved[0], root.setLevel(saved[1])
