"""gpurent web: the market, rentals and dashboards in the browser (issue 12).

Layers (SPEC-R4 §1): a service; it may import oracle.actions, oracle.chain and the pure core,
never oracle.cli or oracle.demo.

- :mod:`oracle.web.store`   the event index (SQLite): raw events + tables derived from them by a
  pure replay, so a reorg rewind is "delete events >= block, replay".
- :mod:`oracle.web.indexer` feeds the store from :class:`oracle.chain.events.EventFollower`
  (market + timelock), adding what a page needs from the chain at the event's block
  (settlement calldata decoded, stake read at that block).
- :mod:`oracle.web.queries` / :mod:`oracle.web.views` answer the JSON API of /work/plan/WEB-API.md.
- :mod:`oracle.web.app`     the FastAPI app; :mod:`oracle.web.server` runs it with uvicorn.
"""
