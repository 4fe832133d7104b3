"""`OneLineParser`: argparse whose usage errors are one line (`<prog>: error: ...`, exit 2), like
every other user error of the toolchain; `--help` still prints the full usage."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (and, through `add_subparsers`, subparsers) with one-line errors."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split()[0] if self.prog else "error"
        if prog == "python" and len(self.prog.split()) > 2:  # "python -m board demo" -> board
            prog = self.prog.split()[2]
        text = " ".join(message.split())
        sys.stderr.write(f"{prog}: error: {text} (see --help)\n")
        sys.exit(2)
