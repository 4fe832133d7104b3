"""torch feature extractor -> simplified ONNX graph at a Tensil opset.

The TorchScript exporter (`dynamo=False`) is the one that still writes opset 9/10; in eval mode it
folds every BatchNormalization into the preceding Conv and lowers the backbones' global average
pooling to `GlobalAveragePool` + `Flatten`. onnx-simplifier then removes the `Identity` nodes and
folds what constants remain.
"""

from __future__ import annotations

import io
import warnings

import onnx
import onnxsim
import torch
from torch import nn

from export.errors import ExportError

# The legacy exporter announces its deprecation on every call; it is still the only one with opset 10.
_EXPORTER_NOISE = r"(?s).*(legacy TorchScript-based ONNX export|will be removed).*"


def trace_to_onnx(
    model: nn.Module, input_shape: tuple[int, ...], opset: int, input_name: str, output_name: str
) -> onnx.ModelProto:
    """Export `model` (eval mode) for one fixed-shape float input and one output."""
    buffer = io.BytesIO()
    example = torch.zeros(input_shape)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_EXPORTER_NOISE)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the shapes are fixed on purpose
        try:
            torch.onnx.export(
                model.eval(),
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                do_constant_folding=True,
                keep_initializers_as_inputs=False,
                training=torch.onnx.TrainingMode.EVAL,
            )
        except Exception as e:  # the exporter raises many types for unsupported modules
            raise ExportError(f"torch.onnx.export failed: {str(e).strip().splitlines()[0]}") from None
    return onnx.load_from_string(buffer.getvalue())


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Run onnx-simplifier and insist that its own output check passes."""
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as e:
        raise ExportError(f"onnx-simplifier failed: {str(e).strip().splitlines()[0]}") from None
    if not ok:
        raise ExportError("onnx-simplifier could not validate the simplified model")
    return simplified


def to_tensil_onnx(
    model: nn.Module, input_shape: tuple[int, ...], opset: int, input_name: str, output_name: str, doc: str = ""
) -> onnx.ModelProto:
    """Export, simplify and describe a feature extractor; the graph check is the caller's."""
    simplified = simplify(trace_to_onnx(model, input_shape, opset, input_name, output_name))
    simplified.graph.name = "backbone"
    simplified.doc_string = doc
    return simplified
