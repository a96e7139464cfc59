"""Attestation: EIP-712 usage and fault reports, report building and secp256k1 signing."""
