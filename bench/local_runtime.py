"""The local runtime's throughput: the demo's history part (crm_local.demo: two stores, the simulated shoppers'
three waves of webhooks and /track batches sent over HTTP by eight concurrent senders, each wave drained before
the next), then every shopper checked through the marketer API against the simulation.

Prints requests/s while sending, the webhooks' latency (p50, p95), how long each wave took to drain and the
whole part's wall time. ``--in-process`` runs the functions in the runtime's own process (as before issue 12)
for a comparison in the same conditions; the script uses only the runtime's public API, so it also runs on an
older checkout (`OTHER/.venv/bin/python bench/local_runtime.py`). Times are the machine's: run the two designs
back to back, alone if you can.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from crm.models.profile import Profile
from crm_local.demo import SECRETS, SENDERS, STACK, Api, Sent, free_port, send, set_rates, table_entities, verify
from crm_local.operations import add_store, stack_outputs
from crm_local.runtime import LocalRuntime
from crm_local.simulation import DOMAINS, LINKS, SHOPIFY, START, STORE_CURRENCY, WOOCOMMERCE, Store, simulate


def _ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process, and of its live descendants (the worker processes), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    descendants, frontier = 0.0, list(children.get(os.getpid(), []))
    while frontier:
        pid = frontier.pop()
        descendants += stats[pid][1]
        frontier += children.get(pid, [])
    return stats[os.getpid()][1], descendants


def run(shoppers: int, seed: int, in_process: bool) -> int:
    began = time.perf_counter()
    simulation = simulate(shoppers, seed)
    os.environ["TRACK_MAX_EVENT_AGE_DAYS"] = str(max(7, (datetime.now(UTC) - START).days + 1))
    options: dict[str, Any] = {"workers": False} if in_process else {}
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name=STACK, **options) as runtime:
        up = time.perf_counter() - began
        outputs = stack_outputs(STACK)
        shop = add_store(STACK, SHOPIFY, DOMAINS[SHOPIFY], SECRETS[SHOPIFY], currency=STORE_CURRENCY[SHOPIFY])
        woo = add_store(STACK, WOOCOMMERCE, DOMAINS[WOOCOMMERCE], SECRETS[WOOCOMMERCE],
                        workspace_id=shop.workspace_id, currency=STORE_CURRENCY[WOOCOMMERCE])
        stores = {SHOPIFY: Store(SHOPIFY, shop.domain, SECRETS[SHOPIFY], shop.write_key or ""),
                  WOOCOMMERCE: Store(WOOCOMMERCE, woo.domain, SECRETS[WOOCOMMERCE], woo.write_key or "")}
        results: list[Sent] = []
        sending = 0.0
        history_began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            for wave in range(1, LINKS + 1):
                messages = simulation.wave(wave)
                started = time.perf_counter()
                results += pool.map(lambda m: send(runtime.api_url, stores, m), messages)
                sent = time.perf_counter() - started
                sending += sent
                drained = runtime.wait_idle(timeout=900)
                print(f"wave {wave}: {len(messages)} requests sent in {sent:.1f} s ({len(messages) / sent:.1f}/s), "
                      f"drained {time.perf_counter() - started:.1f} s after the first{'' if drained else ' (NOT)'}",
                      flush=True)
        rated = set_rates(Api(runtime.api_url, shop.api_key)) and runtime.wait_idle(timeout=900)
        history = time.perf_counter() - history_began
        own_cpu, workers_cpu = cpu_seconds()
        profiles = [Profile.model_validate(p) for p in table_entities(outputs["TableName"]).get("profile", [])]
        wrong = verify(runtime.api_url, shop.api_key, profiles, simulation.expected)
    webhooks = [r.seconds for r in results if r.kind != "track"]
    tracks = [r.seconds for r in results if r.kind == "track"]
    rejected = sum(1 for r in results if r.status >= 300)
    has_workers = any(f.name == "workers" for f in dataclasses.fields(LocalRuntime))
    design = "functions in worker processes" if has_workers and not in_process else "functions in the runtime's process"
    print(f"{design}: {shoppers} shoppers, {len(results)} requests ({rejected} not accepted)")
    print(f"  stack up                 {up:.1f} s")
    print(f"  sending                  {len(results) / sending:.1f} requests/s ({sending:.1f} s)")
    print(f"  webhook latency          p50 {_ms(webhooks, 0.5):.0f} ms, p95 {_ms(webhooks, 0.95):.0f} ms, "
          f"mean {1000 * statistics.fmean(webhooks):.0f} ms")
    print(f"  /track latency           p50 {_ms(tracks, 0.5):.0f} ms, p95 {_ms(tracks, 0.95):.0f} ms")
    print(f"  history part             {history:.1f} s (sent, drained, rates set); "
          f"{len(results) / history:.1f} requests/s")
    print(f"  CPU seconds              {own_cpu:.1f} in the runtime's process, {workers_cpu:.1f} in its workers "
          f"(stack start included)")
    print(f"  verified                 {len(simulation.expected.shoppers) - len(wrong)}/"
          f"{len(simulation.expected.shoppers)} shoppers" + (f"; wrong: {wrong[:3]}" if wrong else ""))
    print(f"  wall time                {time.perf_counter() - began:.1f} s", flush=True)
    return 1 if wrong or rejected or not rated else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--in-process", action="store_true", help="the functions in the runtime's own process")
    args = parser.parse_args(argv)
    return run(args.shoppers, args.seed, args.in_process)


if __name__ == "__main__":
    sys.exit(main())
