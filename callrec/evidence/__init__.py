"""callrec's evidence, in one home below the services: this host's settings for it
(``settings.py``), its signing keys (``keys.py``), its chains' logs and sealed writes
(``chain.py``), the ledger in the bucket (public keys and signed checkpoints, ``ledger.py``) and
the rules archive verify judges chains by (``rules.py``). What is signed and how a chain links
are the contract's (callrec/signing.py): a third party needs only those.

The chain's local record is an append-only log (``<dir>/chains/<chain>.log``, one line per
entry), appended under an exclusive ``flock`` so that the call flow, the CLI and the archive on
one host never give two versions one number. Checkpoints of it go to the bucket under Object
Lock, so a deleted, replaced or re-ordered version is detectable even by someone who can bypass
GOVERNANCE retention.
"""
