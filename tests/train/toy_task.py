"""A toy regression task for the training loop: dropout (RNG), a buffer (state), deterministic data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from vlkd_cli.artifacts.io import save_artifact
from vlkd_cli.distributed import all_gather_json, get_rank, get_world_size


class Batch(dict):
    def to(self, device):
        return Batch({k: v.to(device) for k, v in self.items()})

    def __len__(self) -> int:
        return len(self["x"])


class ToyData(Dataset):
    def __init__(self, n: int = 48) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.randn(8, 1, generator=g) + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class ToyModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(float(os.environ.get("TOY_DROPOUT", "0.2"))), nn.Linear(16, 1))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, batch):
        prediction = self.net(batch["x"])
        mse = ((prediction - batch["y"]) ** 2).mean()
        return {"loss": mse * float(os.environ.get("TOY_LOSS_SCALE", "1")), "mse_loss": mse}


class ToyTask:
    metric_name = "neg_mse"

    def __init__(self, crash_at: int | None = None) -> None:
        self.module = ToyModule()
        self.crash_at = crash_at
        self.steps = 0

    def train_dataset(self):
        return ToyData()

    def collate(self, items):
        return Batch(x=torch.stack([x for x, _ in items]), y=torch.stack([y for _, y in items]))

    def after_step(self) -> None:
        self.module.seen += 1
        self.steps += 1
        if self.crash_at is not None and self.steps == self.crash_at:
            os.kill(os.getpid(), 9)  # a hard kill, as from the OOM killer or a scheduler

    def evaluate(self, module):
        data = ToyData(47)  # odd: 24 + 23 items over two processes, no padded duplicate may count
        mine = list(range(get_rank(), len(data), get_world_size()))  # no padded duplicates
        errors = [float(((module.net(data.x[i : i + 1]) - data.y[i : i + 1]) ** 2).sum()) for i in mine]
        gathered = [e for part in all_gather_json(errors) for e in part]
        return {"neg_mse": -sum(gathered) / len(gathered), "count": float(len(gathered))}

    def save_model(self, out: Path, state_dict, metadata, summary) -> None:
        save_artifact(out / "model.safetensors", state_dict, metadata)


def main() -> None:
    """`python -m tests.train.toy_task OUT [--resume] [--crash-at N] [--world-batch B]` (also under torchrun)."""
    from vlkd_cli.train.loop import TrainConfig, train

    out = Path(sys.argv[1])
    args = sys.argv[2:]
    crash_at = int(args[args.index("--crash-at") + 1]) if "--crash-at" in args else None
    batch = int(args[args.index("--batch") + 1]) if "--batch" in args else 8
    cfg = TrainConfig(epochs=3, batch_size=batch, lr=1e-2, save_every=2, eval_every=4, log_every=1,
                      resume="--resume" in args, overwrite="--overwrite" in args, seed=1)  # fmt: skip
    result = train(ToyTask(crash_at), cfg, out=out, device=torch.device("cpu"), command="toy", run_config={})
    if get_rank() == 0:
        print(json.dumps({"steps": result.steps, "best": result.best_metric}))


if __name__ == "__main__":
    main()
