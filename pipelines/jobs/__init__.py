"""The jobs the commands run: training, evaluation, prediction, reports, the demo, splits, stored
segments and run directories. Typed inputs in, records out: a job never prints, exits or parses
arguments (its progress goes to the ``logging`` module)."""
