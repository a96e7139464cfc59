"""The telemetry agent: batching, signing, the durable spool and delivery to oracle nodes."""

from oracle.agent.agent import Agent, AgentStats, build_agent, build_source, run_agent
from oracle.agent.config import AgentConfig, SourceConfig, load_agent_config, make_agent_config
from oracle.agent.delivery import Backoff, DeliveryWorker
from oracle.agent.spool import ChainHead, Spool, SpooledBatch

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentStats",
    "Backoff",
    "ChainHead",
    "DeliveryWorker",
    "SourceConfig",
    "Spool",
    "SpooledBatch",
    "build_agent",
    "build_source",
    "load_agent_config",
    "make_agent_config",
    "run_agent",
]
