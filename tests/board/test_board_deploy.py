"""`python -m board deploy` with a fake scp/ssh on PATH that copies into a local folder."""

import os
import subprocess
import sys

FAKE = """#!/bin/sh
# fake {tool}: log the call, then act on the local "board" folder $FAKE_BOARD
echo "{tool} $*" >> "$FAKE_BOARD/calls.log"
if [ "{tool}" = ssh ]; then
  shift; cd "$FAKE_BOARD" && sh -c "$(echo "$*" | sed "s#/home/xilinx#$FAKE_BOARD/home/xilinx#g")"
else
  last=""; for a in "$@"; do last="$a"; done
  dest="$FAKE_BOARD${{last#*:}}"
  for a in "$@"; do case "$a" in -*|"$last") ;; *) cp -r "$a" "$dest" ;; esac; done
fi
"""


def test_deploy_copies_bundle_board_and_tensil(onnx_bundle, tmp_path):
    bin_dir, board = tmp_path / "bin", tmp_path / "board"
    bin_dir.mkdir()
    board.mkdir()
    for tool in ("scp", "ssh"):
        (bin_dir / tool).write_text(FAKE.format(tool=tool))
        (bin_dir / tool).chmod(0o755)
    saved = board / "home/xilinx/fsl_demo/classes.npz"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(b"taught classes")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_BOARD=str(board))
    done = subprocess.run([sys.executable, "-m", "board", "deploy", "--bundle", str(onnx_bundle), "--board",
                           "xilinx@pynq", "--tool", "scp"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    dest = board / "home/xilinx/fsl_demo"
    assert (dest / "board/demo.py").is_file() and (dest / "bundle/model.json").is_file()
    assert (dest / "safeio/atomic.py").is_file()
    assert (dest / "tensil/isa.py").is_file() and (dest / "tensil/archs/custom_perf.tarch").is_file()
    assert not (dest / "tensil/compiler").exists()
    assert saved.read_bytes() == b"taught classes"          # a redeploy keeps the taught classes
    assert "sudo bash -lc 'cd /home/xilinx/fsl_demo && python3 board/demo.py --bundle bundle --backend tensil" in done.stdout
    calls = (board / "calls.log").read_text()
    assert calls.startswith("ssh xilinx@pynq mkdir -p /home/xilinx/fsl_demo") and "scp -r -q" in calls


def test_deploy_without_board_fails_cleanly(onnx_bundle):
    done = subprocess.run([sys.executable, "-m", "board", "deploy", "--bundle", str(onnx_bundle)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "board: error: give the board as --board user@host"
