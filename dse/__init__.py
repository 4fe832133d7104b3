"""Design-space exploration: sweep backbones x image sizes x Tensil architectures x clocks, and
measure each point's few-shot accuracy (float and fixed point) against its FPGA latency."""
