"""Probe: where do the heads of a model extended 8x look, with full attention, once a query is far
into the window? S2-Attn training never shows a query a key farther back than one group (G = N/4);
this measures how much attention mass each model puts on such keys, and on the nearest ones.

Per model (name=path pairs), over the first --windows windows of --seq_len tokens of the book
validation stream: for every layer, the attention mass of the queries in the second half of the
window on keys 0-63 tokens back, 64 to G-1 back, and G or more back, averaged over heads and
queries, and the largest per-head share beyond G. Rows are appended to probe.csv beside this file.
"""

import argparse
import csv
import os
import time

import torch

from longlora.data import default_data_path, load_token_stream
from longlora.model import load_model
from longlora.results import git_commit, hardware

RESULTS = "results/probes/attention_reach"


def distance_masses(attentions: torch.Tensor, group: int) -> dict[str, torch.Tensor]:
    """Per head: mean attention mass of the second half's queries on keys by distance band."""
    n = attentions.shape[-1]
    queries = torch.arange(n // 2, n)
    distance = queries[:, None] - torch.arange(n)[None, :]
    weights = attentions[:, queries]  # heads x queries x keys
    bands = {"near": (distance >= 0) & (distance < 64), "mid": (distance >= 64) & (distance < group),
             "far": distance >= group}
    return {name: (weights * mask).sum(-1).mean(-1) for name, mask in bands.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="name=path of an output of train.py (or a base, with PI)")
    parser.add_argument("--seq_len", type=int, default=2048)
    parser.add_argument("--windows", type=int, default=4)
    args = parser.parse_args()
    if bad := [spec for spec in args.models if "=" not in spec]:
        parser.error(f"each model is name=path, got {bad[0]!r}")
    group = args.seq_len // 4
    commit = git_commit()
    rows = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        start = time.time()
        model, _ = load_model(path, target_len=args.seq_len, attn_implementation="eager")
        tokens = load_token_stream(default_data_path(path, "books", "validation"))
        per_layer = None
        for w in range(args.windows):
            ids = torch.tensor(tokens[w * args.seq_len:(w + 1) * args.seq_len].astype("int64"))[None]
            with torch.no_grad():
                attentions = model(ids, output_attentions=True).attentions
            masses = [distance_masses(a[0].float(), group) for a in attentions]
            per_layer = masses if per_layer is None else [
                {k: acc[k] + m[k] for k in m} for acc, m in zip(per_layer, masses)]
        for layer, masses in enumerate(per_layer):
            mean = {k: (v / args.windows) for k, v in masses.items()}
            rows.append({"model": name, "layer": layer, "near_mass": f"{mean['near'].mean():.4f}",
                         "mid_mass": f"{mean['mid'].mean():.4f}", "far_mass": f"{mean['far'].mean():.4f}",
                         "far_mass_max_head": f"{mean['far'].max():.4f}", "seq_len": args.seq_len,
                         "windows": args.windows, "path": path, "git_commit": commit,
                         "hardware": hardware(),
                         "wall_seconds": f"{time.time() - start:.1f}"})
        print(name, " ".join(f"L{r['layer']} far {r['far_mass']} (max head {r['far_mass_max_head']})"
                             for r in rows if r["model"] == name))
    path = os.path.join(RESULTS, "probe.csv")
    new = not os.path.isfile(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
