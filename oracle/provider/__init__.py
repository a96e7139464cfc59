"""The provider daemon (issue 10): renters' workloads in containers on the rented GPUs.

Layering: ``provider`` sits above ``agent`` (it runs one telemetry agent per rental) and may
import ``agent``, ``chain``, ``telemetry`` and the pure cores; nothing below imports it.

- ``workload``: the renter's workload spec, its on-chain commitment (keccak of the canonical
  JSON) and its ECIES envelope to the provider's agent key.
- ``auth``: renter requests signed with EIP-191 over method, path, body hash and time.
- ``runtime``: the Docker Engine API (only the rented GPUs by UUID, limits, no host mounts).
- ``daemon``: watches the chain, accepts, starts, runs telemetry, stops, re-adopts.
- ``api`` / ``client``: the daemon's authenticated HTTP endpoint and the renter's side of it.
"""

from oracle.errors import GpurentError


class ProviderError(GpurentError, RuntimeError):
    """The provider daemon refused or failed to do something (the message says what)."""


class NoGpuRuntimeError(ProviderError):
    """Docker has no NVIDIA runtime: the daemon refuses to run workloads unconfined."""


class AuthError(ProviderError, PermissionError):
    """A renter request whose signature, signer or time does not hold."""


__all__ = ["AuthError", "NoGpuRuntimeError", "ProviderError"]
