"""The one path to the chain for the CLI, the demo and the web app (issue 13).

Every action has a planning function ``plan_<name>(view, ...) -> list[TxRequest]`` (reads the chain,
signs nothing: the web server returns these to a browser wallet) and an executing function
``<name>(ctx, ...)`` that sends the plan through the journal and a local signer and returns a typed
result. Modules:

- ``context``: :class:`MarketView` (read, for an account) and :class:`ActionContext` (sign + journal);
- ``requests``: :class:`TxRequest` and intent keys; ``journal`` and ``executor``: record before
  send, resume after an interrupt (``TxInterrupted``); ``txstatus``: what the journal holds;
- ``tokens``: token metadata in any shape, USDT-safe approvals;
- ``views``: typed reads (offer, rental with budget left and run-out time, stake, reputation);
  ``usage``: a rental's settled usage read back from the settling transactions;
- ``staking``, ``offers``, ``rentals``, ``governance``, ``operators``: the actions;
- ``deploy``: the resumable deployment.

Layering (pyproject ``[tool.importlinter]``): actions import the chain layer and the pure core only.
"""
