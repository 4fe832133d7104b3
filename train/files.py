"""Atomic file writes for train and fl_bridge: the shared stdlib-only implementation in `safeio`
(temp file next to the target, one rename, temp removed on failure, stale temps of killed
writers removed, artifacts 0644)."""

from __future__ import annotations

from safeio.atomic import ARTIFACT_MODE, atomic_path, atomic_write_text

__all__ = ["ARTIFACT_MODE", "atomic_path", "atomic_write_text"]
