"""The configuration of a federated run: one dataclass whose fields are the CLI flags of
`python -m fl_bridge run`, saved as `config.json` in the run folder. Defaults = the embedded
default: synthetic data, ResNet-9 strided with 16 feature maps at 32x32, FLoCoRA r=16 and
alpha=256 (alpha = 16 r as in the thesis), 8-bit messages, 20 clients, 5 per round, 20 rounds,
LDA alpha 0.5. `--method q-fedavg|q-fedupdate` trains in INT8 on the clients (every parameter, or
with `--lora` FLoCoRA's adapters) and sends power-of-two INT8 messages both ways."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from contracts import DEFAULT_ARCH, DEFAULT_MHZ, fl_run_dir
from fl_bridge.codec import CodecConfig
from fl_bridge.errors import FLError
from fl_bridge.local import LocalConfig
from fl_bridge.model import ModelConfig
from fl_bridge.precision.engine import UPDATES, Int8Training, parse_eta_schedule
from train.backbones import BackboneError, BackboneSpec, check_spec


RUN_METHODS = ("fedavg", "flocora", "q-fedavg", "q-fedupdate", "halo-fl")
QUANTIZED_METHODS = ("q-fedavg", "q-fedupdate", "halo-fl")  # halo-fl: 8-bit grid and broadcast, see fl_bridge/halo
ENGINES = ("inline", "ray")  # how `fl_bridge run` simulates its clients (see fl_bridge.simulate)


@dataclass(frozen=True)
class RunConfig:
    out: str = fl_run_dir()
    # data
    dataset: str = "synthetic"
    data_root: str = ""
    image_size: int = 32
    # model
    backbone: str = "resnet9"
    feature_maps: int = 16
    strided: bool = True
    norm: str = "batch"
    method: str = "flocora"
    rank: int = 16
    alpha: float = 256.0
    adapt_stem: bool = False
    rotation: bool = False
    # INT8 client training (q-fedavg, q-fedupdate)
    lora: bool = False  # train FLoCoRA's adapters (rank, alpha, adapt-stem) instead of every parameter
    grid_update: str = "niti"
    eta: int = 3
    eta_schedule: str = ""  # "ROUND:ETA,...": eta from that round on (NITI's 5 -> 4 -> 3); "" = eta throughout
    int8_momentum: int = 0  # NITI's integer momentum in sixteenths (0 = none, the paper's Eq. 2)
    int8_decay_shift: int = 0  # integer weight decay: round(codes / 2^d) per step (0 = none)
    # FedMPQ (--method fedmpq, and its baselines aqfl, fpq8; fl_bridge/fedmpq): per-client weight-bit budgets
    mpq_budgets: str = "2,4,6,8"  # one budget per client, or budget levels shared out by mpq_budget_shares
    mpq_budget_shares: str = "20,30,30,20"  # percent of the clients at each budget level (in client order)
    mpq_act_bits: int = 4
    mpq_lambda: float = 0.01  # weight of the bit-plane group lasso
    mpq_eps: float = 0.03  # MSB pruning threshold on the top plane's density
    mpq_representation: str = "sign-magnitude"  # or "literal": the paper's offset binary
    mpq_allocation: str = "literal"  # Alg. 2 as published, or "strict": never over budget
    # messages
    quant_bits: int = 8
    prune_rate: float = 0.0
    deflate: bool = False
    # federation
    clients: int = 20
    per_round: int = 5
    rounds: int = 20
    lda_alpha: float = 0.5
    samples_per_client: int = 0  # 0 = an equal share of the base split
    round_timeout: float = 600.0
    # local training (defaults are LocalConfig's: one source of truth)
    epochs: int = LocalConfig.epochs
    batch_size: int = LocalConfig.batch_size
    lr: float = LocalConfig.lr
    momentum: float = LocalConfig.momentum
    weight_decay: float = LocalConfig.weight_decay
    augment: bool = LocalConfig.augment
    # evaluation of the global model
    eval_every: int = 5
    episodes: int = 200
    ways: int = 5
    shots: tuple[int, ...] = (1, 5)
    queries: int = 15
    # simulation
    engine: str = "inline"  # "inline": clients in this process, no sockets; "ray": Flower's Ray simulation
    supernodes: int = 0  # 0 = one virtual SuperNode per client sampled in a round
    client_cpus: float = 1.0
    # deployment: each SuperNode trains on its own data (its node config's partition-id,
    # num-partitions and data-folder) instead of the server-assigned partitions of `data_root`
    node_data: bool = False
    seed: int = 0
    # HaLo-FL (--method halo-fl; fl_bridge/halo): per-client (bw, ba, be) chosen by HaLo-PS
    halo_energy: int = 7  # clients 0.. are energy-constrained, then latency, area, unconstrained
    halo_latency: int = 7
    halo_area: int = 6
    halo_unconstrained: int = 0
    halo_start: str = "8-8-8"  # bw-ba-be
    halo_floors: str = "2-4-4"
    halo_step: int = 2
    halo_step_rule: str = "every-k"
    halo_step_every: int = 0  # 0 = ceil(rounds / 3)
    halo_tie_break: str = "be,ba,bw"
    halo_cost_model: str = "surrogate"
    halo_calibration: str = "cifar10"
    halo_aggregation: str = "paper"
    halo_upload: str = "bw"  # bw: the bw-bit forward weights (the paper's comm. cost); grid: the 8-bit stored weights
    halo_fpga_arch: str = DEFAULT_ARCH
    halo_fpga_mhz: float = DEFAULT_MHZ

    @property
    def quantized_training(self) -> bool:
        return self.method in QUANTIZED_METHODS

    @property
    def unused_settings(self) -> set[str]:
        """Fields this run's method never reads (a resumed run may differ in them): FLoCoRA's
        adapter settings without adapters, INT8 training settings without INT8 training, and the
        FedMPQ and HaLo-FL blocks under other methods."""
        from fl_bridge.fedmpq.methods import FEDMPQ_METHODS  # FedMPQ

        names = {f.name for f in fields(self)}
        unused = {"rank", "alpha", "adapt_stem"} if self.structure == "fedavg" else set()
        if not self.quantized_training:
            unused |= {"lora", "grid_update", "eta", "eta_schedule", "int8_momentum", "int8_decay_shift"}
        if self.method not in FEDMPQ_METHODS:
            unused |= {n for n in names if n.startswith("mpq_")}
        if self.method != "halo-fl":
            unused |= {n for n in names if n.startswith("halo_")}
        return unused

    @property
    def structure(self) -> str:
        """The model's trained set: "flocora" (adapters) or "fedavg" (every parameter)."""
        return "flocora" if self.method == "flocora" or (self.quantized_training and self.lora) else "fedavg"

    @property
    def int8(self) -> Int8Training | None:
        if not self.quantized_training:
            return None
        return Int8Training(self.quant_bits, self.grid_update, self.eta, momentum=self.int8_momentum,
                            decay_shift=self.int8_decay_shift)

    def spec(self, in_channels: int = 3) -> BackboneSpec:
        return BackboneSpec(self.backbone, self.feature_maps, self.strided, in_channels, self.image_size, self.norm)

    @property
    def codec(self) -> CodecConfig:
        return CodecConfig(self.quant_bits, self.prune_rate, self.deflate,
                           "pow2" if self.quantized_training else "affine")

    @property
    def local(self) -> LocalConfig:
        return LocalConfig(**{f.name: getattr(self, f.name) for f in fields(LocalConfig)})

    def model_config(self, num_classes: int, in_channels: int) -> ModelConfig:
        return ModelConfig(self.spec(in_channels), num_classes, self.structure, self.rank, self.alpha, self.adapt_stem,
                           self.rotation, self.seed)

    def check(self) -> "RunConfig":
        """Raise FLError with one clear line for any inconsistent setting."""
        from fl_bridge.fedmpq.methods import FEDMPQ_METHODS, method_spec  # FedMPQ

        try:
            check_spec(self.spec())
            self.codec.check()
            parse_eta_schedule(self.eta_schedule)
            if self.method in FEDMPQ_METHODS:  # FedMPQ and its baselines
                method_spec(self.method, self.mpq_budgets, self.mpq_budget_shares, self.clients, self.mpq_act_bits,
                            self.mpq_lambda, self.mpq_eps, self.mpq_representation, self.mpq_allocation)
        except (BackboneError, ValueError) as e:
            raise FLError(str(e)) from None
        methods = RUN_METHODS + FEDMPQ_METHODS
        problems = [
            (self.method not in methods, f"method must be one of {', '.join(methods)}"),
            (self.quantized_training and self.quant_bits != 8,
             f"{self.method} trains and sends INT8: --quant-bits must be 8"),
            (self.lora and not self.quantized_training, "--lora is for q-fedavg / q-fedupdate (use --method flocora)"),
            (self.grid_update not in UPDATES, f"grid-update must be one of {', '.join(UPDATES)}"),
            (self.engine not in ENGINES, f"engine must be one of {', '.join(ENGINES)}"),
            (not 0 <= self.eta <= 7, "eta (bits of the integer weight update) must be in 0..7"),
            (not 0 <= self.int8_momentum <= 15, "int8-momentum (sixteenths) must be in 0..15"),
            (self.int8_decay_shift < 0, "int8-decay-shift must be >= 0 (0 = no weight decay)"),
            (self.rank < 1 or self.alpha <= 0, "LoRA rank must be >= 1 and alpha > 0"),
            (not 1 <= self.per_round <= self.clients, "per-round must be between 1 and the number of clients"),
            (self.rounds < 1 or self.epochs < 1 or self.batch_size < 1, "rounds, epochs and batch size must be >= 1"),
            (not (self.lda_alpha > 0 or math.isinf(self.lda_alpha)), "lda-alpha must be > 0 (inf = IID)"),
            (self.eval_every < 1 or self.episodes < 1, "eval-every and episodes must be >= 1"),
            (self.lr <= 0 or self.round_timeout <= 0, "lr and round timeout must be > 0"),
        ]
        for bad, line in problems:
            if bad:
                raise FLError(line)
        if self.method == "halo-fl":  # HaLo-FL
            from fl_bridge.halo.settings import settings

            try:
                settings(self)
            except ValueError as e:
                raise FLError(str(e)) from None
        return self.check_values()

    def check_values(self) -> "RunConfig":
        """Every number finite and in range, the dataset name known, --out writable (FLError, one line)."""
        from safeio import UsageError, check_int_range, check_output, check_range
        from train.readers import READERS

        if self.dataset not in READERS:
            close = [n for n in READERS if n == self.dataset.lower().replace("-", "").replace("_", "")]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise FLError(f"--dataset {self.dataset!r}: unknown{hint} (choose one of {', '.join(READERS)})")
        try:
            check_range("--lr", self.lr, 0, low_open=True)
            check_range("--momentum", self.momentum, 0, 1, high_open=True)
            check_range("--weight-decay", self.weight_decay, 0)
            check_range("--alpha", self.alpha, 0, low_open=True)
            check_range("--prune-rate", self.prune_rate, 0, 1, high_open=True)
            check_range("--round-timeout", self.round_timeout, 0, low_open=True)
            check_range("--client-cpus", self.client_cpus, 0, low_open=True)
            for flag, value, low in (("--clients", self.clients, 1), ("--samples-per-client", self.samples_per_client, 0),
                                     ("--supernodes", self.supernodes, 0), ("--seed", self.seed, 0),
                                     ("--ways", self.ways, 2), ("--queries", self.queries, 1)):
                check_int_range(flag, value, low)
            if not self.shots or min(self.shots) < 1:
                raise UsageError(f"--shots {list(self.shots)}: every value must be at least 1")
            if self.data_root and not Path(self.data_root).is_dir():
                raise UsageError(f"--data-root {self.data_root}: folder does not exist")
            check_output("--out", self.out, "folder")
        except UsageError as e:
            raise FLError(str(e)) from None
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shots"] = list(self.shots)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FLError(f"unknown run setting(s): {', '.join(unknown)}")
        d = dict(d)
        if "shots" in d:
            d["shots"] = tuple(int(s) for s in d["shots"])
        return cls(**d)

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunConfig":
        path = Path(run_dir) / "config.json"
        if not path.is_file():
            raise FLError(f"{run_dir} is not a federated run folder (no config.json)")
        return cls.from_dict(json.loads(path.read_text()))
