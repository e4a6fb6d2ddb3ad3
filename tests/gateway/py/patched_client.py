"""Run `integrator.py` unchanged, after the few module-level tweaks a test set-up needs:

    python patched_client.py [--queue-url URL] [--max-attempts N] SCENARIO [SCENARIO …]

--queue-url     the queue-URL override (plain HTTP, tests only): assign
                `fal_client.client.QUEUE_URL_FORMAT`, e.g. http://localhost:8000/fal/
--max-attempts  how often the client tries one HTTP call (fal's default is 10 with exponential
                backoff, ~50 s before a connection error surfaces); 1 shows the first error at once
"""
import argparse
import runpy
import sys
from pathlib import Path

import fal_client.client

parser = argparse.ArgumentParser()
parser.add_argument("--queue-url")
parser.add_argument("--max-attempts", type=int)
options, scenarios = parser.parse_known_args()
# Module constants of fal-client 1.x: fail loudly (not slowly) if a release renames them.
assert hasattr(fal_client.client, "QUEUE_URL_FORMAT") and hasattr(fal_client.client, "MAX_ATTEMPTS")
if options.queue_url:
    fal_client.client.QUEUE_URL_FORMAT = options.queue_url
if options.max_attempts:
    fal_client.client.MAX_ATTEMPTS = options.max_attempts
sys.argv = [str(Path(__file__).with_name("integrator.py")), *scenarios]
runpy.run_path(sys.argv[0], run_name="__main__")
