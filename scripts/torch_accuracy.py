#!/usr/bin/env python3
"""Time to a test accuracy in PyTorch DDP, with digits' recipe, for the side-by-side row of
`scripts/bench.sh mpi-accuracy` (never a dependency of digits).

Trains a digits model spec (torch_bench.build) on real MNIST under DistributedDataParallel (gloo),
RANKS processes of one thread each, with what `digits train` does by default: inputs x/255
standardised with (0.1307, 0.3081), Adam at a peak rate of 2e-3 on a one-cycle schedule (cosine up
from peak/25 over the first quarter, cosine down to peak/25/1e4, no momentum cycling), batch 64 per
rank, each rank its own half of a reshuffled epoch. After every epoch the ranks evaluate their
halves of the 10,000 test images and add up the correct counts.

  torch_accuracy.py MODEL --data-dir DIR [--epochs 2] [--ranks 2] [--target 0.99]

Prints one JSON line per epoch (test accuracy, cumulative seconds of training and evaluation, as
digits' metrics count them) and a last line with the seconds to the first evaluation at or above
--target (null if not reached).
"""
import argparse
import gzip
import json
import math
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import build  # noqa: E402


def read_idx(path):
    """An IDX file (raw or gzip) as a numpy array of its shape."""
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            break
    else:
        raise SystemExit(f"torch_accuracy: {path}(.gz) does not exist")
    opener = gzip.open if open(candidate, "rb").read(2) == b"\x1f\x8b" else open
    with opener(candidate, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, kind):
    images = read_idx(os.path.join(data_dir, f"{kind}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(data_dir, f"{kind}-labels-idx1-ubyte"))
    x = (torch.from_numpy(images.astype(np.float32)) / 255 - 0.1307) / 0.3081
    return x.unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


def worker(rank, world, args, port, queue):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    train_x, train_y = load(args.data_dir, "train")
    test_x, test_y = load(args.data_dir, "t10k")
    torch.manual_seed(args.seed)
    model = DistributedDataParallel(build(args.model))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = len(train_x) // (args.batch_size * world)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25, anneal_strategy="cos",
        div_factor=25, final_div_factor=1e4, cycle_momentum=False)
    mine = slice(rank * len(test_x) // world, (rank + 1) * len(test_x) // world)
    dist.barrier()
    elapsed, reached = 0.0, None
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        share = order[rank::world]
        for step in range(steps_per_epoch):
            batch = share[step * args.batch_size:(step + 1) * args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
            schedule.step()
        model.eval()
        correct = torch.zeros(1, dtype=torch.int64)
        with torch.inference_mode():
            for i in range(mine.start, mine.stop, 500):
                end = min(i + 500, mine.stop)
                correct += (model(test_x[i:end]).argmax(1) == test_y[i:end]).sum()
        dist.all_reduce(correct)
        elapsed += time.perf_counter() - start
        accuracy = correct.item() / len(test_x)
        if reached is None and accuracy >= args.target:
            reached = elapsed
        if rank == 0:
            queue.put({"epoch": epoch + 1, "test_accuracy": accuracy, "seconds": elapsed})
    if rank == 0:
        queue.put({"torch": torch.__version__, "model": args.model, "ranks": world, "target": args.target,
                   "seconds_to_target": reached})
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import torch.multiprocessing as mp
    queue = mp.get_context("spawn").SimpleQueue()
    with socket.socket() as probe:   # a port free now, for the gloo rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(worker, args=(args.ranks, args, port, queue), nprocs=args.ranks, join=True)
    while not queue.empty():
        print(json.dumps(queue.get(), separators=(",", ":")))
    return 0 if math.isfinite(args.target) else 1


if __name__ == "__main__":
    sys.exit(main())
