"""The compiler's one exception type: bad input, unsupported construct or a network that cannot fit."""

from __future__ import annotations


class CompileError(ValueError):
    """One clear line naming what is wrong (node, operator, attribute or memory)."""
