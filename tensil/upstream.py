"""`--backend upstream`: run `tensil compile` of the `tensilai/tensil` Docker image.

Needs a Docker engine that answers (`docker version` reaching the server) and the image; the
command is upstream's (`tensil compile -a <tarch> -m <onnx> -o <outputs> -t <dir> -s true`).
Its files are produced in a temporary directory and moved into place only when all three
exist, with the tool's console output saved as `<name>.upstream.log`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tensil.arch import Arch, save_arch

IMAGE = "tensilai/tensil:latest"
ENGINE_TIMEOUT_S = 20


class UpstreamError(RuntimeError):
    """Docker or the upstream compiler is unavailable or failed."""


@dataclass
class UpstreamResult:
    tmodel: Path
    log: Path


def docker_engine() -> str:
    """The Docker client path if an engine answers; else UpstreamError saying why."""
    client = shutil.which("docker")
    if client is None:
        raise UpstreamError("the upstream backend needs Docker, and no `docker` client is on PATH")
    try:
        probe = subprocess.run([client, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                               text=True, timeout=ENGINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UpstreamError("the Docker engine did not answer within "
                            f"{ENGINE_TIMEOUT_S} s; the upstream backend needs a running Docker engine") from None
    if probe.returncode != 0 or not probe.stdout.strip():
        why = (probe.stderr.strip().splitlines() or ["no server version"])[-1]
        raise UpstreamError(f"no Docker engine answers ({why}); the upstream backend needs a running Docker engine")
    return client


def compile_upstream(onnx_path: str | Path, arch: Arch, output_names: list[str], out_dir: str | Path) -> UpstreamResult:
    """Compile with upstream Tensil in Docker; files land in `out_dir` all together or not at all."""
    client = docker_engine()
    onnx_path, out_dir = Path(onnx_path).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tensil-upstream-", dir=out_dir))
    try:
        shutil.copy(onnx_path, work / onnx_path.name)
        save_arch(arch, work / f"{arch.name}.tarch")
        cmd = [client, "run", "--rm", "-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{work}:/work", "-w", "/work",
               IMAGE, "tensil", "compile", "-a", f"/work/{arch.name}.tarch", "-m", f"/work/{onnx_path.name}",
               "-o", ",".join(output_names), "-t", "/work/out", "-s", "true", "--layers-summary", "true"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        log = work / "upstream.log"
        log.write_text(run.stdout + run.stderr)
        models = sorted((work / "out").glob("*.tmodel"))
        if run.returncode != 0 or len(models) != 1:
            last = (run.stderr.strip() or run.stdout.strip() or "no output").splitlines()[-1]
            raise UpstreamError(f"upstream tensil compile failed (exit {run.returncode}): {last}")
        stem = models[0].stem
        files = [work / "out" / f"{stem}.{ext}" for ext in ("tdata", "tprog", "tmodel")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UpstreamError(f"upstream tensil compile did not write {', '.join(missing)}")
        os.replace(log, out_dir / f"{stem}.upstream.log")
        for f in files:
            os.replace(f, out_dir / f.name)
        return UpstreamResult(out_dir / f"{stem}.tmodel", out_dir / f"{stem}.upstream.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
