"""Why a rank failed, in its own words: the last meaningful error line of its log.

"exit code 1" says nothing; the line that says why (``ModuleNotFoundError: No module named
'x'``, ``train.py: error: unrecognized arguments: --data_url=/x/``) is near the end of the
log. Only a bounded tail of each log is read, so a huge log costs no more than a small one.
Traindeck's own lines are skipped, except its error lines (``[traindeck] error: ...``, e.g.
from ``bootstrap.py``), which are the reason when nothing of the script's says otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from app.formatting import shorten
from app.logs import split_timestamp, tail_file
from app.runtime.logpump import SUPERVISOR_PREFIX as OWN_PREFIX

TAIL_BYTES = 64 * 1024
"""How much of the end of a log is searched."""
TAIL_LINES = 400
MAX_REASON_CHARS = 300
MESSAGE_LINES = 4
"""How many lines after an exception's empty first line are taken as its message."""
OWN_ERROR = OWN_PREFIX + "error: "

_TRACEBACK = "Traceback (most recent call last):"
# An exception line as Python prints it: `ValueError: bad`, `torch.OutOfMemoryError: CUDA
# out of memory`, `KeyboardInterrupt`. Only names ending as exceptions do, so a plain
# `Note: ...` or a `UserWarning: ...` is not taken for one outside a traceback.
_EXCEPTION = re.compile(r"(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)"
                        r"(?::(?P<message>.*))?")
_ARGPARSE = re.compile(r"[^\s:][^:]{0,200}: error: \S.*")
_OOM = re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError")
# `Killed` (sh) or `bash: line 1: 4321 Killed   python train.py` (bash).
_KILLED = re.compile(r"Killed|\S+: (?:line \d+: +)?\d+ Killed\b.*")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")
# Launchers that merge several workers' output mark each line (`[rank0]: `, torchrun's
# `--tee` gives `[default0]:`); the mark is dropped so the worker's traceback is seen.
_WORKER_MARK = re.compile(r"\[[A-Za-z]+\d+\]:[ \t]?")


def _tail_lines(path: Path) -> list[str]:
    """The texts (stamps removed) of the last lines of a log; none if it cannot be read."""
    try:
        with open(path, "rb") as f:
            lines, _ = tail_file(f, TAIL_LINES, include_partial=True, max_bytes=TAIL_BYTES)
    except OSError:
        return []
    texts = [split_timestamp(line)[1] for line in lines]
    return [text[mark.end():] if (mark := _WORKER_MARK.match(text)) else text
            for text in texts]


def find_error_line(lines: Sequence[str]) -> str | None:
    """The last meaningful error line among a log's texts, or None.

    Meaningful: the exception line that ends a Python traceback (or such a line on its
    own), an argparse ``error:`` line, a CUDA out-of-memory line, a shell's ``Killed``,
    or Traindeck's own ``[traindeck] error: ...`` line. An exception without a message
    (``KeyboardInterrupt``, torchrun's ``ChildFailedError:`` whose details follow on other
    lines) counts only when there is nothing better, so torchrun's summary does not hide
    the worker's own exception printed before it. An exception that ends a traceback with
    an empty first line (``ModuleNotFoundError: `` whose message begins with a newline,
    then ``Could not find ...``, ``Please run ...``) takes the lines that follow, up to a
    blank line, a line of no words (torchrun's ``=====`` rule) or ``MESSAGE_LINES`` lines,
    as its message.
    """
    strong: str | None = None
    weak: str | None = None
    in_traceback = False
    message: list[str] = []  # the name, then the message lines, of such an exception
    for raw in lines:
        text = raw.rstrip()
        if message:
            if (len(message) <= MESSAGE_LINES and _WORD.search(text) and text != _TRACEBACK
                    and not text.startswith(OWN_PREFIX)):
                message.append(text.strip())
                strong = f"{message[0]}: {' '.join(message[1:])}"
                continue
            message = []
        if text.startswith(OWN_PREFIX):
            if text.startswith(OWN_ERROR):
                strong = text.removeprefix(OWN_ERROR)
            continue
        if text == _TRACEBACK:
            in_traceback = True
            continue
        if in_traceback and (not text or text[0].isspace()):
            continue  # a frame of the traceback
        ends_traceback, in_traceback = in_traceback, False
        exception = _EXCEPTION.fullmatch(text)
        if exception is not None:
            if (exception["message"] or "").strip():
                strong = text
            elif ends_traceback or text.endswith(":"):
                weak = text.rstrip(":")
                if ends_traceback and exception["message"] is not None:
                    message = [weak]
        elif ends_traceback and text:
            strong = text  # whatever ends a traceback is its exception
        elif _ARGPARSE.fullmatch(text) or _OOM.search(text) or _KILLED.fullmatch(text):
            strong = text
    return strong or weak


def error_line(log_path: Path) -> str | None:
    """The last meaningful error line of a log (see ``find_error_line``), as one line of
    at most ``MAX_REASON_CHARS`` characters."""
    line = find_error_line(_tail_lines(log_path))
    if not line:
        return None
    return shorten(_SPACES.sub(" ", line).strip(), MAX_REASON_CHARS)
