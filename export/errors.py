"""The export stage's exceptions: each carries one clear line for the CLI."""


class ExportError(ValueError):
    """An export that cannot be made (bad checkpoint, bad option, unreadable ONNX, ...)."""


class GraphCheckError(ExportError):
    """An ONNX graph that the Tensil front end would reject or silently mis-compile."""


class ParityError(ExportError):
    """onnxruntime and torch disagree beyond float tolerance."""


class SidecarError(ExportError):
    """A sidecar that is missing, corrupt, or does not describe its ONNX file."""
