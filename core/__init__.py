"""Building blocks every app uses and that know no app: text and JSON limits, the public-address
rule for URLs, reading settings from the environment, model rows from hand-written SQL, the
throttle's counts, admin mixins, and the worker cluster's supervisor. Imports nothing of the apps."""
