"""`gpurent oracle status`: can each node do its job? One check per line, each ok, warn or fail,
with what to do when it is not ok. A node fails when it is unreachable or cannot store, follows no
chain (or another one), lags, is not in the on-chain signer set, or has no gas to settle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from oracle.actions import reads

MAX_LAG_BLOCKS = 20
LOW_GAS_WEI = 10**16  # 0.01 ETH: a few dozen settlements on an L2, a handful on L1


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # "ok" | "warn" | "fail"
    detail: str


@dataclass
class NodeResult:
    url: str
    signer: str | None = None
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, level: str, detail: str) -> None:
        self.checks.append(Check(name, level, detail))


def _chain_facts(chain: Any) -> tuple[Any, str | None]:
    """(session, why not) for the chain the checks compare the nodes with."""
    from oracle.cli.session import Session

    try:
        return Session(chain), None
    except Exception as exc:  # no chain or no deployment: the chain checks say so, per node
        return None, " ".join(str(getattr(exc, "message", exc)).split())[:200]


def check_nodes(urls: tuple[str, ...], chain: Any) -> list[NodeResult]:
    import httpx

    from oracle.units import format_amount

    session, why = _chain_facts(chain)
    signer_set = reads.signer_set(session.ctx) if session is not None else None
    results = []
    for url in urls:
        r = NodeResult(url)
        results.append(r)
        try:
            info = httpx.get(f"{url}/v1/node", timeout=5).json()
            health_response = httpx.get(f"{url}/healthz", timeout=5)
            health = health_response.json()
        except (httpx.HTTPError, ValueError) as exc:
            r.add("reachable", "fail", f"no answer ({type(exc).__name__}): is `gpurent oracle run` running there?")
            continue
        r.signer = info.get("signer")
        if health.get("status") == "ok":
            r.add("storage", "ok", "answers, and its database reads and writes")
        else:
            r.add("storage", "fail", f"unhealthy: {health.get('detail')}; check its disk and db_path")
        node_chain = health.get("chain")
        if node_chain is None:
            r.add("chain", "fail", "follows no chain (no rpc_url in its config): it learns no rentals and cannot "
                                   "settle; add rpc_url (`gpurent oracle init-config` writes it)")
        else:
            state, lag = node_chain.get("state"), (node_chain.get("follower") or {}).get("lag_blocks")
            if state != "following":
                r.add("chain", "fail", f"{state}: {node_chain.get('detail') or 'see the node log'}")
            elif lag is not None and lag > MAX_LAG_BLOCKS:
                r.add("chain", "fail", f"{lag} blocks behind the chain head: its RPC is slow or failing")
            else:
                r.add("chain", "ok", f"following ({lag or 0} blocks behind)")
            for warning in node_chain.get("warnings") or []:
                r.add("warning", "warn", warning)
            settlement = node_chain.get("settlement") or {}
            if not settlement.get("enabled", True):
                r.add("settlement", "warn", "does not submit settlements itself (submit_settlements = false)")
            elif settlement.get("round_errors"):
                r.add("settlement", "warn", f"{settlement['round_errors']} settlement rounds failed (see its log)")
            else:
                last = settlement.get("last_submission")
                r.add("settlement", "ok", "no failed rounds" + (
                    f"; last: rental {last['rental_id']} {last['status']}" if last else "; nothing submitted yet"))
        if session is None:
            r.add("signer set", "warn", f"cannot check against the chain ({why})")
            continue
        if int(info.get("chain_id", 0)) != session.chain_id or \
                str(info.get("market_address", "")).lower() != session.deployment.market.lower():
            r.add("deployment", "fail", f"signs for chain {info.get('chain_id')} market {info.get('market_address')}, "
                                        f"not this chain's market {session.deployment.market}")
            continue
        assert signer_set is not None
        if r.signer not in signer_set.signers:
            r.add("signer set", "fail", f"{r.signer} is not in the on-chain signer set v{signer_set.version}: its "
                                        "signatures do not count (governance adds it: `gpurent governance set-signers`)")
        else:
            r.add("signer set", "ok", f"member of v{signer_set.version} ({signer_set.threshold} of "
                                      f"{len(signer_set.signers)} sign)")
        configured = info.get("signer_set_version")
        if configured != signer_set.version:
            r.add("version", "warn", f"its config says signer_set_version {configured}, the chain is at "
                                     f"v{signer_set.version}: settlement asks for the chain's version; set "
                                     f"signer_set_version = {signer_set.version} for the rest")
        wei = int(session.w3.eth.get_balance(r.signer)) if r.signer else 0
        gas = format_amount(wei, 18, "ETH")
        if wei == 0:
            r.add("gas", "fail", f"{r.signer} holds no ETH: it cannot submit settlements; send it some "
                                 f"(`gpurent chain fund {r.signer}` on a local chain)")
        elif wei < LOW_GAS_WEI:
            r.add("gas", "warn", f"only {gas} for settlement transactions; top it up")
        else:
            r.add("gas", "ok", f"{gas} for settlement transactions")
    return results


def render(results: list[NodeResult], as_json: bool) -> None:
    from oracle.cli.output import console, print_json, table

    if as_json:
        print_json([{"url": r.url, "signer": r.signer, "ok": not any(c.level == "fail" for c in r.checks),
                     "checks": [asdict(c) for c in r.checks]} for r in results])
        return
    marks = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
    for r in results:
        verdict = "cannot do its job" if any(c.level == "fail" for c in r.checks) else "can do its job"
        console().print(table(f"{r.url} (signer {r.signer or '?'}): {verdict}", ["check", "", "detail"],
                              [(c.name, marks[c.level], c.detail) for c in r.checks]))
