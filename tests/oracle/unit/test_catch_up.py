"""Catch-up (issue 9): a node that was away longer than the batch age still catches up on a running
rental. The agent's spool re-sends everything the node missed, oldest first; the node takes an old
batch when it is exactly the next one of its stored chain (tests/oracle/unit/test_node_ingest.py),
and an agent that parked batches as "stale" (an older node) requeues them when the node answers
a sequence gap that they fill."""

from __future__ import annotations

import json
import threading

import httpx

from oracle.agent.delivery import DeliveryWorker
from oracle.agent.spool import Spool
from oracle.node.testing import AGENT_KEY, chain_batches, trace_samples
from oracle.telemetry.batches import TelemetryBatch

NODE = "http://node"


class CatchingUpNode:
    """Refuses old batches as stale until ``caught_up`` (an older node), then takes the next batch
    of its chain and answers sequence_gap with ``expected_seq`` otherwise, like a real node."""

    def __init__(self):
        self.accepted: list[int] = []
        self.caught_up = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        batch = TelemetryBatch.from_wire_bytes(request.content)
        expected = len(self.accepted)
        if not self.caught_up:
            return httpx.Response(422, json={"detail": "newest sample is 90000000 ms old", "reason": "stale"})
        if batch.batch_seq < expected:
            return httpx.Response(200, json={"status": "duplicate"})
        if batch.batch_seq > expected:
            return httpx.Response(409, json={"detail": f"expected batch_seq {expected}", "reason": "sequence_gap",
                                             "expected_seq": expected})
        self.accepted.append(batch.batch_seq)
        return httpx.Response(200, json={"status": "accepted"})


def test_batches_parked_as_stale_are_resent_when_the_node_asks_for_them(tmp_path):
    batches = chain_batches(AGENT_KEY, 7, trace_samples()[:60], samples_per_batch=10)
    node = CatchingUpNode()
    with Spool(tmp_path / "spool.db") as spool:
        for batch in batches[:3]:
            spool.append(batch, [NODE])
        worker = DeliveryWorker(NODE, spool, stop=threading.Event(),
                                client=httpx.Client(transport=httpx.MockTransport(node.handle)))
        while (item := spool.next_pending(NODE)) is not None:
            worker.deliver_one(item)
        assert [p[:2] for p in spool.parked(NODE)] == [(7, 0), (7, 1), (7, 2)]  # an older node refused them

        node.caught_up = True  # the node now takes old batches that continue its chain
        for batch in batches[3:]:
            spool.append(batch, [NODE])
        for _ in range(50):
            item = spool.next_pending(NODE)
            if item is None:
                break
            worker.deliver_one(item)
        assert node.accepted == list(range(len(batches)))  # nothing lost, in order
        assert spool.parked(NODE) == [] and spool.pending(NODE) == []
        worker.close()


def test_a_gap_over_batches_parked_for_another_reason_stays_parked(tmp_path):
    batches = chain_batches(AGENT_KEY, 7, trace_samples()[:30], samples_per_batch=10)
    answers = iter([httpx.Response(422, json={"detail": "bad", "reason": "schema"}),
                    httpx.Response(409, json={"detail": "gap", "reason": "sequence_gap", "expected_seq": 0}),
                    httpx.Response(409, json={"detail": "gap", "reason": "sequence_gap", "expected_seq": 0})])
    with Spool(tmp_path / "spool.db") as spool:
        for batch in batches:
            spool.append(batch, [NODE])
        worker = DeliveryWorker(NODE, spool, stop=threading.Event(),
                                client=httpx.Client(transport=httpx.MockTransport(lambda r: next(answers))))
        while (item := spool.next_pending(NODE)) is not None:
            worker.deliver_one(item)
        parked = spool.parked(NODE)
        assert [p[:2] for p in parked] == [(7, 0), (7, 1), (7, 2)]
        assert json.loads(parked[0][2].split(": ", 1)[1])["reason"] == "schema"
        worker.close()
