"""How fast the playground trains and how often its page gets a view, next to a bare PyTorch
loop of the same model on the same batches.

For each configuration (the page's default run and the lessons) it prints

- bare          steps/s of ``loss = CE(net(x[b]), y[b]); zero_grad; backward; step``
- watched       the same loop inside ``gradsight.watch(net, every=1)`` (the monitor alone)
- playground    steps/s of a playground run, measured through the live server: a run is
                created by POST /api/runs and its server-sent event stream is read to the end,
                as the page does; steps / wall time from the first to the last event
- views/s       snapshots the stream delivered per second while the run trained

All on one torch thread (as ``gradsight serve`` sets). Run: ``python benchmarks/playground.py``
(``--steps N`` per run, ``--only NAME``).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight.lab import data
from gradsight.web import create_app
from gradsight.web.config import parse_config
from gradsight.web.lessons import LESSONS
from gradsight.web.model import PlayNet
from gradsight.web.runs import dataset_for


def configs(steps: int) -> dict[str, dict]:
    out = {"default": {"steps": steps}}
    for lesson in LESSONS:
        if lesson.id != "relu_derivative":
            out[lesson.id] = {**lesson.config, "steps": steps}
    return out


def loop_rate(body: dict, watched: bool) -> float:
    cfg = parse_config(body)
    ds = dataset_for(cfg)
    net = PlayNet(cfg, ds.n_features, ds.n_classes)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    idx = data.batches(len(ds.y_train), cfg.batch_size, cfg.steps, cfg.seed)
    x, y = ds.X_train, ds.y_train
    mon = gs.watch(net, every=1) if watched else None
    start = time.perf_counter()
    for b in idx:
        loss = F.cross_entropy(net(x[b]), y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step()
    if mon is not None:
        mon.report()  # the monitor's deferred host work belongs to its cost
        mon.close()
    return cfg.steps / (time.perf_counter() - start)


def served_rate(base: str, body: dict) -> tuple[float, float, int]:
    import httpx

    with httpx.Client(base_url=base, timeout=120) as c:
        run_id = c.post("/api/runs", json=body).json()["id"]
        times, steps = [], []
        with c.stream("GET", f"/api/runs/{run_id}/stream") as res:
            for line in res.iter_lines():
                if line.startswith("data: "):
                    ev = json.loads(line[6:])
                    times.append(time.perf_counter())
                    steps.append(ev["step"])
        c.delete(f"/api/runs/{run_id}")
    wall = times[-1] - times[0]
    return (steps[-1] - steps[0]) / wall, (len(times) - 1) / wall, len(times)


def serve() -> tuple[str, object]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps per run")
    ap.add_argument("--only", default=None, help="one configuration name")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base, srv = serve()
    rows = []
    for name, body in configs(args.steps).items():
        if args.only and name != args.only:
            continue
        bare = loop_rate(body, watched=False)
        watched = loop_rate(body, watched=True)
        play, views, events = served_rate(base, body)
        rows.append((name, bare, watched, play, views))
        print(f"{name:20s} bare {bare:8.1f}/s  watched {watched:8.1f}/s ({watched / bare:4.0%})  "
              f"playground {play:8.1f}/s ({play / bare:4.0%})  views {views:5.1f}/s ({events} events)",
              flush=True)  # fmt: skip
    srv.should_exit = True
    print()
    print("| configuration | bare loop steps/s | watch(every=1) steps/s | playground steps/s | playground / bare | view updates/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, bare, watched, play, views in rows:
        print(f"| {name} | {bare:.0f} | {watched:.0f} | {play:.0f} | {play / bare:.0%} | {views:.1f} |")


if __name__ == "__main__":
    main()
