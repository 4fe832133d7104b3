"""Stdlib-only helpers that every room (train, export, tensil, fpga, board, fl_bridge) may import.

- `atomic`: one atomic write (temp file next to the target, one rename, temp removed on failure,
  stale temps of killed writers removed), artifact modes 0644 for files and 0755 for folders;
- `lock`: one lock per output (`OutputLock`): a second writer fails at once with one line;
- `checks`: flag validation before any work (finite, in range, known name, writable output);
- `cli`: `OneLineParser`, argparse with one-line usage errors, and one dataclass <-> flags helper
  (`add_dataclass_flags`, `config_from_args`, `dataclass_flags`).

Every failure is a `UsageError` (a ValueError) carrying one line for the CLI.
"""

from safeio.atomic import (ARTIFACT_MODE, FOLDER_MODE, atomic_path, atomic_write_bytes, atomic_write_text, make_folder,
                           make_folders, remove_stale_temps, replace_folder, save_figure, temp_folder, temp_path)
from safeio.checks import (UsageError, check_choice, check_finite, check_int_range, check_range,
                           check_input_file, check_output)
from safeio.cli import OneLineParser, add_dataclass_flags, config_from_args, dataclass_flags
from safeio.lock import OutputLock, output_lock

__all__ = [
    "ARTIFACT_MODE", "FOLDER_MODE", "atomic_path", "save_figure", "atomic_write_bytes", "atomic_write_text", "make_folder",
    "remove_stale_temps", "replace_folder", "temp_folder", "temp_path", "UsageError", "check_choice", "check_finite",
    "check_int_range", "check_range", "check_input_file", "check_output", "OutputLock", "output_lock",
    "OneLineParser", "add_dataclass_flags", "config_from_args", "dataclass_flags",
]
