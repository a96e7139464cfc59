"""gpurent's off-chain oracle: telemetry agent, metering, attestation nodes, chain client."""

__version__ = "0.1.0"
