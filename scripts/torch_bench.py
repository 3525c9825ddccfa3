#!/usr/bin/env python3
"""The same model in PyTorch, timed the way `digits bench` times it, for side-by-side ratios.

Used by scripts/bench.sh when torch is importable (never a dependency of digits). The model is
built from the same text spec as digits' ModelSpec (conv32k5p2-bn-relu-pool2-...), trained with
Adam on batches of random 28x28 images (the arithmetic does not depend on the pixel values), in
float32 on the CPU.

  torch_bench.py MODEL_SPEC --threads T [--steps N] [--ddp RANKS] [--channels-last] [--train-only]
                 [--max-seconds S]                                  one JSON line on stdout

Reports training images/s (all ranks together under --ddp), and without --ddp also inference
images/s at batch 64 over 10,000 images and the median single-image latency. --channels-last puts
the model and its inputs in torch.channels_last (NHWC, the layout oneDNN's CPU convolutions run
without reorders: PyTorch's tuned CPU configuration). The JSON names the kernels ATen dispatches to
("cpu_capability", from torch.backends.cpu.get_cpu_capability(): capped with ATEN_CPU_CAPABILITY)
and oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA) when set.
"""
import json
import os
import socket
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_spec  # noqa: E402



def build(spec):
    """nn.Sequential for a digits model spec (model_spec.layers)."""
    layers, channels, height, width, features = [], 1, 28, 28, None
    for kind, values in model_spec.layers(spec, "torch_bench"):
        if kind == "conv":
            out, k, s, p = values
            layers.append(nn.Conv2d(channels, out, k, stride=s, padding=p))
            channels, height, width = out, (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(channels) if features is None else nn.BatchNorm1d(features))
        elif kind == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif kind == "pool":
            k, s = values
            layers.append(nn.MaxPool2d(k, s))
            height, width = (height - k) // s + 1, (width - k) // s + 1
        elif kind == "flatten":
            layers.append(nn.Flatten())
            features = channels * height * width
        elif kind == "dense":
            layers.append(nn.Linear(features, values[0]))
            features = values[0]
        else:
            layers.append(nn.Dropout(values[0]))
    return nn.Sequential(*layers)


def layout(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def train_rate(model, batch, steps, warmup, step_hook=None, channels_last=False, max_seconds=0.0):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(batch, 1, 28, 28).contiguous(memory_format=layout(channels_last))
    y = torch.randint(0, 10, (batch,))
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if step_hook:
        step_hook()
    start = time.perf_counter()
    done = 0
    while done < steps:
        step()
        done += 1
        # Bounds the wall time when the cores are shared (never under DDP: every rank must take the same steps).
        if max_seconds and time.perf_counter() - start > max_seconds:
            break
    if step_hook:
        step_hook()
    return batch * done / (time.perf_counter() - start)


def inference(model, runs, channels_last=False):
    model.eval()
    images = torch.rand(10_000, 1, 28, 28).contiguous(memory_format=layout(channels_last))
    with torch.inference_mode():
        for i in range(0, 640, 64):
            model(images[i:i + 64])
        start = time.perf_counter()
        for i in range(0, images.shape[0], 64):
            model(images[i:i + 64])
        rate = images.shape[0] / (time.perf_counter() - start)
        one = images[:1]
        for _ in range(20):
            model(one)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(one)
            times.append(time.perf_counter() - t0)
    return rate, 1000 * statistics.median(times)


def ddp_worker(rank, world, spec, batch, steps, warmup, port, queue, channels_last=False):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(1)
    model = DistributedDataParallel(build(spec).to(memory_format=layout(channels_last)))
    rate = train_rate(model, batch, steps, warmup, step_hook=dist.barrier, channels_last=channels_last)
    if rank == 0:
        queue.put(rate * world)
    dist.destroy_process_group()


def main():
    parser = model_spec.bench_parser(__doc__)
    parser.add_argument("--ddp", type=int, default=0, help="ranks for DistributedDataParallel (gloo), 1 thread each")
    parser.add_argument("--channels-last", action="store_true", help="model and inputs in torch.channels_last")
    parser.add_argument("--train-only", action="store_true", help="time training only (no inference or latency)")
    parser.add_argument("--max-seconds", type=float, default=0.0,
                        help="without --ddp: stop the timed steps after this many seconds (0: never)")
    args = parser.parse_args()
    result = {"torch": torch.__version__, "model": args.model, "batch": args.batch_size,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "channels_last": args.channels_last}
    if args.ddp:
        import torch.multiprocessing as mp
        queue = mp.get_context("spawn").SimpleQueue()
        with socket.socket() as probe:   # a port free now, for the gloo rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        mp.spawn(ddp_worker, args=(args.ddp, args.model, args.batch_size, args.steps, args.warmup_steps, port, queue,
                                   args.channels_last), nprocs=args.ddp, join=True)
        result.update(ranks=args.ddp, threads=1, images_per_second=queue.get())
    else:
        torch.set_num_threads(args.threads)
        torch.manual_seed(1)
        model = build(args.model).to(memory_format=layout(args.channels_last))
        result.update(ranks=1, threads=args.threads,
                      images_per_second=train_rate(model, args.batch_size, args.steps, args.warmup_steps,
                                                   channels_last=args.channels_last, max_seconds=args.max_seconds))
        if not args.train_only:
            rate, latency = inference(model, args.latency_runs, channels_last=args.channels_last)
            result.update(inference_images_per_second=rate, latency_ms=latency)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    sys.exit(main())
