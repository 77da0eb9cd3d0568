"""`hub bench`: the flash-sale benchmark, its limits measured in the same run, and its report.

`workload` builds the orders and webhook deliveries, `limits` measures the raw pipe (aiokafka
produce+consume, batched conditional UPDATEs), `loadgen` drives the gateway from a child process,
`runner` runs the phases against a live Runtime and checks correctness, `report` writes the table,
the JSON document and the PNG plot.
"""

from hub.bench.runner import REQUIRED_KEYS, BenchOptions, run_bench

__all__ = ["REQUIRED_KEYS", "BenchOptions", "run_bench"]
