"""How an image becomes the network's input: recorded with the backbone (contract 1), copied
into the export sidecar (2) and the bundle's manifest (5), applied by `train` and the board."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.errors import ContractError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to `resize`, centre-crop `image_size` x `image_size`, scale to
    [0, 1], then `(x - mean) / std` per channel, channels in `channel_order`."""

    image_size: int = 32
    resize: int = 36
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.resize < self.image_size:
            raise ContractError(f"preprocessing: resize {self.resize} must be at least the image size "
                                f"{self.image_size} (>= 1)")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ContractError(f"preprocessing: mean and std need 3 values each, got {list(self.mean)} and "
                                f"{list(self.std)}")
        if not all(s > 0 for s in self.std):
            raise ContractError(f"preprocessing: std {list(self.std)} must be positive")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ContractError(f"preprocessing: unknown channel order {self.channel_order!r} "
                                f"(one of {', '.join(CHANNEL_ORDERS)})")

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "resize": self.resize, "mean": list(self.mean),
                "std": list(self.std), "channel_order": self.channel_order}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """From a record; `resize` defaults to `image_size`, `channel_order` to RGB."""
        try:
            return cls(image_size=int(d["image_size"]), resize=int(d.get("resize", d["image_size"])),
                       mean=tuple(float(v) for v in d["mean"]), std=tuple(float(v) for v in d["std"]),
                       channel_order=str(d.get("channel_order", "RGB")).upper())
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError(f"preprocessing record lacks or mangles {exc!s}: {d!r}"[:300]) from None
