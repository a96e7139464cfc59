"""The demo's final table: every number as read back from the chain or a node."""

from __future__ import annotations

from typing import Any

from oracle.demo.base import DemoResult


def render_summary(result: DemoResult) -> Any:
    """The final table (rich renderable)."""
    from rich.console import Group
    from rich.table import Table

    s = result.summary
    scale = 10 ** s["decimals"]
    sym = s["symbol"]
    t = Table(title=f"gpurent demo: rental {s['rental_id']} on chain {s['chain_id']} "
                    f"({result.wall_s:.0f} s wall clock)", title_justify="left")
    t.add_column("", style="bold")
    t.add_column("value", justify="right")
    t.add_column("read from", style="dim")
    rows = [
        ("GPU-hours (attested available)", f"{s['gpu_hours']:.4f}", "chain: getRental"),
        ("busy GPU-hours", f"{s['busy_gpu_hours']:.4f}", "chain: last settled report"),
        ("energy", f"{s['energy_kwh']:.5f} kWh", "chain: last settled report"),
        ("carbon", f"{s['carbon_g']:.2f} gCO2e", "chain: last settled report"),
        ("uptime", f"{s['uptime_bps'] / 100:.2f} %", "chain: getRental"),
        (f"reports settled (quorum {s['quorum']})", f"{s['settled_reports']} (last sequence {s['last_sequence']})",
         "chain: Usage(Batch)Settled"),
        ("budget escrowed", f"{s['budget'] / scale:.6f} {sym}", "chain: getRental"),
        ("paid from escrow", f"{s['paid_from_escrow'] / scale:.6f} {sym}", "chain: getRental"),
        ("  of which protocol fee", f"{s['protocol_fee'] / scale:.6f} {sym}", "chain: RentalFinalized"),
        ("paid to provider", f"{s['paid_to_provider'] / scale:.6f} {sym}", "chain: Withdrawn"),
        ("refunded to renter", f"{s['refunded_to_renter'] / scale:.6f} {sym}", "chain: Withdrawn"),
        ("provider reputation", f"{s['provider_reputation_score_bps'] / 100:.2f} / 100 "
                                f"({s['provider_completed_rentals']} completed)", "chain: reputationScore"),
    ]
    from oracle.demo.container import summary_rows as container_rows
    from oracle.demo.faults import summary_rows as fault_rows

    rows += container_rows(s.get("container"))
    rows += fault_rows(s.get("slashes"), s.get("slash_payout"), scale, sym, s.get("node_names", {}))
    pog = s.get("challenges")
    if pog:
        unpaid_s = sum(span["end_ms"] - span["start_ms"] for span in pog["unpaid"]) / 1000
        rows.append(("proof-of-GPU challenges (quorum)", f"{pog['passed']} passed, {pog['failed']} failed"
                     + (f", {unpaid_s:.0f} GPU-s unpaid" if pog["unpaid"] else ""), f"node {pog['node']}"))
        end = pog.get("end") or {}
        if end.get("status") == "issued":
            rows.append(("end challenge (full memory, after the end)", end.get("quorum") or "not decided",
                         f"node {pog['node']}; a failure is a slashable fault, never in a report"))
        counted = s.get("challenges_in_report") or {}
        if counted.get("passed") is not None:
            rows.append(("challenges counted in the settled reports", f"{counted['passed']} passed, "
                         f"{counted['failed']} failed", "chain: the last settled report"))
    node = s.get("node_report")
    if node:
        rows.append(("node's report, same sequence", f"{node['energy_millijoules'] / 3.6e9:.5f} kWh, "
                     f"{node['busy_gpu_seconds'] / 3600:.4f} busy GPU-h", f"node {node['node']}"))
    for row in rows:
        t.add_row(*row)
    st = Table(title="settlements (sent by the nodes themselves; chain: Usage(Batch)Settled and the tx sender)",
               title_justify="left")
    st.add_column("report", justify="right")
    st.add_column("paid", justify="right")
    st.add_column("submitted by")
    st.add_column("tx hash", overflow="fold")
    for entry in s["settlements"]:
        st.add_row(str(entry["sequence"]), f"{entry['payment'] / scale:.6f} {sym}",
                   f"{entry['node'] or 'not a node'} {entry['submitter'][:6]}…{entry['submitter'][-4:]}", entry["tx"])
    txt = Table(title="transactions", title_justify="left", show_header=False)
    txt.add_column("step", style="bold")
    txt.add_column("tx hash", overflow="fold")
    for label, hashes in result.transactions.items():
        txt.add_row(label, hashes[0])
    return Group(t, st, txt)
