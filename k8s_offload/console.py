"""What every command line shares: help with defaults and exit codes, shell completion, log
format, and phase progress on a terminal.

`finish_cli(parser, exit_codes)` is called once per program on its finished parser tree: every
parser (subcommands too) shows each option's default and lists the exit codes, and the top level
gets `--print-completion bash|zsh` (shtab: a static script generated from the parser, so
completion costs nothing at run time). `setup_logging` gives the daemons `--log-format json`.
`Progress` is the small callback a long job (the compile driver, the loader) calls between
phases; it prints only when stderr is a terminal and the user did not ask for quiet.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TextIO

from k8s_offload.version import add_version_argument

__all__ = [
    "JsonFormatter",
    "PhaseHook",
    "Progress",
    "finish_cli",
    "parsers",
    "setup_logging",
]

LOG_FORMATS = ("text", "json")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples, exit-code tables); each option's default
    appended unless its help already says it, or it has none worth showing (unset, a flag off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if not action.option_strings or "default" in text.lower() or text == argparse.SUPPRESS:
            return text
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {default!r})" if default == "" else f"{text} (default: %(default)s)"


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                yield from parsers(sub)


def finish_cli(
    parser: argparse.ArgumentParser,
    exit_codes: Mapping[int, str],
    per_command: Mapping[str, Mapping[int, str]] | None = None,
) -> argparse.ArgumentParser:
    """Defaults and exit codes in every --help (a subcommand's own from `per_command`, keyed by
    its name), and `--version` and `--print-completion` on the top level."""
    for p in parsers(parser):
        name = p.prog.rsplit(" ", 1)[-1]
        codes = (per_command or {}).get(name, exit_codes) if p is not parser else exit_codes
        table = "exit codes:\n" + "\n".join(f"  {code:<3} {text}" for code, text in sorted(codes.items()))
        p.formatter_class = HelpFormatter
        if not (p.epilog or "").rstrip().endswith(table.rstrip()):
            p.epilog = f"{p.epilog.rstrip()}\n\n{table}" if p.epilog else table
    if not any("--version" in a.option_strings for a in parser._actions):
        add_version_argument(parser)
    if not any("--print-completion" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--print-completion",
            choices=COMPLETION_SHELLS,
            default=None,
            action=_PrintCompletion,
            help="print a completion script for this shell",
        )
    return parser


COMPLETION_SHELLS = ("bash", "zsh", "tcsh")


class _PrintCompletion(argparse.Action):
    """`--print-completion SHELL`: the shtab script for the parser. shtab (and the
    importlib.metadata it loads, about 25 ms) is imported only when asked, not on every run."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        import shtab

        print(shtab.complete(parser, values))
        parser.exit(0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log pipelines in a cluster ingest without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(
    log_format: str = "text", verbose: bool = False, *, level: str | None = None, logger: str | None = None
) -> None:
    """Root logging to stderr, as text lines or JSON objects, at `level` (default INFO, DEBUG when
    `verbose`). With `logger`, only that logger gets `level` and everything else (libraries such
    as pyroute2, chatty at DEBUG) stays at WARNING."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    wanted = level or ("DEBUG" if verbose else "INFO")
    logging.basicConfig(level="WARNING" if logger else wanted, handlers=[handler], force=True)
    if logger:
        logging.getLogger(logger).setLevel(wanted)


class PhaseHook(Protocol):
    """Called by a long job after each phase: its name, how many things it made, what they are."""

    def __call__(self, phase: str, count: int, unit: str) -> None: ...


class Progress:
    """A PhaseHook printing `prog: PHASE COUNT UNIT in S s (RATE UNIT/s)` lines on stderr when it
    is a terminal (or `force`), nothing otherwise; the time is since the previous phase."""

    def __init__(
        self, prog: str, *, quiet: bool = False, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.prog = prog
        self.stream = stream or sys.stderr
        self.enabled = not quiet and (force or self.stream.isatty())
        self._last = time.perf_counter()

    def __call__(self, phase: str, count: int, unit: str) -> None:
        now = time.perf_counter()
        took, self._last = now - self._last, now
        if not self.enabled:
            return
        rate = f", {count / took:,.0f} {unit}/s" if took > 0 and count else ""
        print(f"{self.prog}: {phase}: {count:,} {unit} in {took:.2f} s{rate}", file=self.stream, flush=True)
