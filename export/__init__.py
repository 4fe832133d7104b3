"""Backbone checkpoint (contract 1) -> ONNX the Tensil front end accepts (contract 2).

`python -m export --checkpoint PATH.pt --out DIR` writes `DIR/<name>.onnx` (opset 10, one NCHW
float input, one output = features, simplified) and `DIR/<name>.json` (its sidecar), after checking
the operator set against Tensil's allow-list and onnxruntime against torch.
`python -m export check --onnx M.onnx` re-runs the graph checks on any ONNX file.
"""
