"""The fal-compatible queue gateway under /fal/ (docs and README: "The fal-compatible gateway").

fal's official clients talk to the studio as if it were fal's queue: each request is a studio
generation owned by the caller's API key, subject to the same quotas, moderation and storage.
"""
