"""What the scripts that time digits' models in other frameworks (torch_bench.py, tf_bench.py) share:
the presets and spec text (conv32k5p2-bn-relu-pool2-...) as a list of layers (the subset the presets
use; the Swift ModelSpec is the reference), and the command line bench.sh calls them with."""
import argparse
import re

PRESETS = {
    "seed-mlp": "flatten-dense128-relu-dense128-relu-dense10",
    "lenet5": "conv6k5p2-relu-pool2-conv16k5-relu-pool2-flatten-dense120-relu-dense84-relu-dense10",
    "convnet": "conv32k3-relu-pool2-conv64k3-relu-pool2-flatten-drop0.5-dense10",
    "reference": "conv32k5p2-bn-relu-pool2-conv64k5p2-bn-relu-pool2-flatten-dense256-relu-drop0.4-dense10",
    "default": "conv32k5p2-bn-relu-pool2-conv64k3p1-bn-relu-conv64k3p1-bn-relu-pool2-flatten-drop0.3-dense10",
}


def layers(spec, script):
    """(kind, values) per token of a preset or spec: ("conv", (out, kernel, stride, padding)),
    ("bn", ()), ("relu", ()), ("pool", (kernel, stride)), ("flatten", ()), ("dense", (out,)),
    ("drop", (rate,)). Exits naming `script` on a token it does not know."""
    spec = PRESETS.get(spec, spec)
    result = []
    for token in spec.split("-"):
        if m := re.fullmatch(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?", token):
            result.append(("conv", (int(m[1]), int(m[2]), int(m[3] or 1), int(m[4] or 0))))
        elif token in ("bn", "relu", "flatten"):
            result.append((token, ()))
        elif m := re.fullmatch(r"pool(\d+)(?:s(\d+))?", token):
            result.append(("pool", (int(m[1]), int(m[2] or m[1]))))
        elif m := re.fullmatch(r"dense(\d+)", token):
            result.append(("dense", (int(m[1]),)))
        elif m := re.fullmatch(r"drop([0-9.]+)", token):
            result.append(("drop", (float(m[1]),)))
        else:
            raise SystemExit(f"{script}: unknown layer '{token}' in '{spec}'")
    return result


def bench_parser(description):
    """The options bench.sh passes to every framework's timing script."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--latency-runs", type=int, default=300)
    return parser
