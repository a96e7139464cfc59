"""Proof of GPU: challenges only the rented GPU answers in time, checked cheaply by the nodes.

Pure core (no I/O, no clock): :mod:`params` (sizes, deadlines), :mod:`seeds` (every derivation
from chain data), :mod:`work` (the exact int8 computation), :mod:`answer` (commitments and
openings), :mod:`verify` (the node's check), :mod:`schedule` (when each GPU is challenged) and
:mod:`judge` (verdicts, quorum, unpaid time). Solvers: :mod:`solver` (numpy, small sizes) and
:mod:`solver_torch` (CUDA, optional extra ``gpurent[gpu]``). Protocol: docs/protocol.md.
"""
