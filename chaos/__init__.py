"""`make chaos`: jobs against a faulty simulator while worker processes are SIGKILLed, then an audit.

See `python -m chaos --help`; the checks are in chaos/checks.py, the killing in chaos/workers.py.
"""
