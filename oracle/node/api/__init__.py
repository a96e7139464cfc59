"""HTTP edge of the node: dependencies and routes only move data to and from the attestor."""
