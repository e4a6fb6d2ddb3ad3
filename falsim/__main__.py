"""``python -m falsim [flags]``: run the simulator until Ctrl-C or SIGTERM (``falsim/cli.py``)."""

from falsim.cli import main

main()
