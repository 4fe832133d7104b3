"""A small writer of Vivado IP-integrator Tcl: one method per kind of block-design statement."""

from __future__ import annotations


def brace(value: object) -> str:
    """A Tcl word holding `value` verbatim."""
    return "{" + str(value) + "}"


class TclWriter:
    """Accumulates Tcl lines; cells may live in hierarchies (`video/hdmi_out/color_convert`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def raw(self, *lines: str) -> None:
        self.lines.extend(lines)

    def comment(self, text: str) -> None:
        self.lines.extend(["", f"# {text}"])

    def hier(self, path: str) -> None:
        self._in_parent(path, f"create_bd_cell -type hier {path.rsplit('/', 1)[-1]}")

    def cell(self, path: str, vlnv: str, config: dict | None = None) -> None:
        self._in_parent(path, f"create_bd_cell -type ip -vlnv {vlnv} {path.rsplit('/', 1)[-1]}")
        self.config(path, config or {})

    def module(self, path: str, module: str) -> None:
        self._in_parent(path, f"create_bd_cell -type module -reference {module} {path.rsplit('/', 1)[-1]}")

    def config(self, path: str, config: dict) -> None:
        if config:
            self._properties(config, f"[get_bd_cells {path}]")

    def pin_property(self, pin: str, config: dict) -> None:
        self._properties(config, f"[get_bd_pins {pin}]")

    def _properties(self, config: dict, target: str) -> None:
        if len(config) <= 2:
            items = " ".join(f"CONFIG.{k} {brace(v)}" for k, v in config.items())
            self.lines.append(f"set_property -dict [list {items}] {target}")
            return
        self.lines.append("set_property -dict [list \\")
        self.lines.extend(f"    CONFIG.{k} {brace(v)} \\" for k, v in config.items())
        self.lines.append(f"] {target}")

    def intf_port(self, name: str, mode: str, vlnv: str) -> None:
        self.lines.append(f"create_bd_intf_port -mode {mode} -vlnv {vlnv} {name}")

    def net(self, name: str, *pins: str) -> None:
        words = " ".join(f"[get_bd_pins {p}]" for p in pins)
        self.lines.append(f"connect_bd_net -net {name} {words}")

    def intf(self, a: str, b: str, a_is_port: bool = False) -> None:
        first = f"[get_bd_intf_ports {a}]" if a_is_port else f"[get_bd_intf_pins {a}]"
        self.lines.append(f"connect_bd_intf_net {first} [get_bd_intf_pins {b}]")

    def address(self, space: str, segment: str, offset: int, size: int) -> None:
        self.lines.append(
            f"assign_bd_address -offset 0x{offset:08X} -range 0x{size:08X} "
            f"-target_address_space [get_bd_addr_spaces {space}] [get_bd_addr_segs {segment}] -force"
        )

    def _in_parent(self, path: str, command: str) -> None:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            self.lines.extend([f"current_bd_instance /{parent}", command, "current_bd_instance /"])
        else:
            self.lines.append(command)
