"""Vivado project and bitstream for the PYNQ-Z1 with the Tensil accelerator (`python -m fpga`)."""
