"""The facts the rooms agree on, in one place (standard library only; every room may import it).

- `artifacts`: where each artifact lives and how it is named (`build/backbone/<name>.pt`,
  `build/export/<name>.onnx`, `build/tensil/<name>_<arch>.tmodel`, `build/fpga/<arch>_<MHz>MHz`,
  `build/bundle/<name>`, `build/fl/<run>`), the default arch and clock;
- `preprocessing`: how an image becomes the network's input (contract 1, copied into contracts
  2 and 5), with its validation;
- `overlay`: the PYNQ instance names the bitstream has and the board binds to.

Every failure is a `ContractError` (a ValueError) carrying one line.
"""

from contracts.artifacts import (BUILD, BUNDLE_MANIFEST, DEFAULT_ARCH, DEFAULT_MHZ, DEFAULT_NAME, backbone_path,
                                 bundle_dir, bundle_file, compiled_name, export_dir, fl_run_dir, fpga_dir,
                                 fpga_dir_name, onnx_path, parse_fpga_dir_name, rtl_dir, safe_model_name,
                                 tensil_dir, tmodel_path)
from contracts.errors import ContractError
from contracts.overlay import Instances
from contracts.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = [
    "BUILD", "BUNDLE_MANIFEST", "DEFAULT_ARCH", "DEFAULT_MHZ", "DEFAULT_NAME", "backbone_path", "bundle_dir",
    "bundle_file", "compiled_name", "export_dir", "fl_run_dir", "fpga_dir", "fpga_dir_name", "onnx_path",
    "parse_fpga_dir_name", "rtl_dir", "safe_model_name", "tensil_dir", "tmodel_path", "ContractError", "Instances",
    "IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing",
]
