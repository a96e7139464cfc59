"""``make demo`` / ``gpurent demo``: one whole rental on a local anvil chain, end to end.

What runs, in order (each chain step runs the same :mod:`oracle.actions` action as the ``gpurent``
command shown beside it, in-process):

1. a local anvil (its own state directory, so it never touches a chain you started yourself);
2. four encrypted keystores: three oracle nodes and the provider's telemetry agent;
3. ``gpurent deploy``: GpuRentMarket + TestStablecoin, signer set = the three nodes, threshold 2;
4. ``gpurent provider stake`` and ``gpurent provider offer create`` (an H100 offer);
5. ``gpurent rent open`` with a budget and, where Docker is available, a workload the provider
   daemon runs in a container (``container``);
6. three attestation nodes as real uvicorn servers (``gpurent oracle run``, subprocesses), each
   given the RPC endpoint and no rentals: they follow the market's events (the deployer's dev
   account sends their keys some ETH first, since they pay settlement gas);
7. ``gpurent provider start``: the nodes learn the rental from its ``RentalStarted`` event; then
   ``gpurent agent run`` (subprocess) on the NVML source where a GPU exists, else replaying the
   real H100 training trace shipped in ``oracle/data/traces`` time-compressed; the nodes ingest and meter it;
8. settlement while it runs, by the nodes: every few seconds each node's settlement loop collects
   a quorum (2 of 3) of node signatures on the same cumulative report and submits it with its own
   key (staggered by rank, so usually one pays); the demo only watches ``UsageSettled`` and
   ``UsageBatchSettled`` events (a ``settleBatch`` logs one event for the whole batch);
9. ``gpurent rent end``; the nodes still settle the final report (``periodEnd <= endedAt``, within
   the settlement grace); then ``gpurent provider finalize``, and both sides withdraw;
10. a summary in which every number is read back from the chain or from a node.

Time compression on a local chain. A replay at speed ``s`` of a trace of ``D`` seconds stamps its
samples over the real ``D`` seconds that end "now" (nodes refuse future samples), so the rental
must have started ``D - D/s`` seconds ago. The demo starts anvil with its clock in the past and
sets the timestamp of the ``startRental`` block to that moment (``evm_setNextBlockTimestamp``),
and before ``endRental`` moves the chain clock to the wall clock again. The chain then records
a rental as long as the GPU time in the trace, which is what the nodes attest. On a real
network no clock is touched: the NVML source runs in real time.

Modules: ``base`` (options, result, progress display), ``steps`` (the chain steps, one function
each, through :mod:`oracle.actions`: add new steps there), ``run`` (the flow), ``nodes`` (node and
agent subprocesses), ``procs`` (anvil, keys, stopping), ``watch`` (what is watched while the rental
runs), ``summary`` (the final table), ``container`` (the renter's workload run by the provider
daemon in a container, issue 10), ``faults`` (slashes read back from the chain, issue 8). The demo
never imports :mod:`oracle.cli`.
"""

from oracle.demo.base import DemoError, DemoOptions, DemoResult, Ui
from oracle.demo.procs import DemoKeys, _Processes, make_keys
from oracle.demo.run import run_demo, run_rental
from oracle.demo.steps import DemoChain
from oracle.demo.summary import render_summary
from oracle.demo.watch import _wait_nodes

__all__ = ["DemoChain", "DemoError", "DemoKeys", "DemoOptions", "DemoResult", "Ui", "_Processes", "_wait_nodes",
           "make_keys", "render_summary", "run_demo", "run_rental"]
