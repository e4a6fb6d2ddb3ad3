"""What both sides of fal's protocol share: the studio's client and the local simulator.

- `fal_protocol.queue`: the words of fal's queue protocol (its three statuses) and the canonical
  fingerprint of a submitted body;
- `fal_protocol.client`: the studio's client of fal's queue, storage upload and request listing,
  with the one place its errors are classified;
- `fal_protocol.signature`: fal's Ed25519 webhook signature, signing and verifying, and the JWK
  helpers.

Plain Python: nothing here imports Django (`.importlinter` holds the contract), so it imports
without settings, and `falsim` builds on it without depending on the studio.
"""
