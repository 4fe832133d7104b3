"""ONNX -> Tensil compiler: front end, fusion passes, memory planning, lowering, emission.

    from tensil.compiler import compile_onnx, CompileOptions, CompileError
    compiled = compile_onnx("model.onnx", load_arch("custom_perf"))
    compiled.program, compiled.consts, compiled.manifest()

Writing the files and the report is `tensil.report.write_outputs`; the CLI is `tensil.cli`.
"""

from tensil.compiler.errors import CompileError
from tensil.compiler.pipeline import CompiledModel, CompileOptions, compile_network, compile_onnx

__all__ = ["CompileError", "CompiledModel", "CompileOptions", "compile_network", "compile_onnx"]
