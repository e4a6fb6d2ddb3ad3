"""The fal-compatible queue gateway under /fal/ (design.md §2, fal-protocol.md §3.5).

fal's official clients talk to the studio as if it were fal's queue: each request is a studio
generation owned by the caller's API key, subject to the same quotas, moderation and storage.
"""
