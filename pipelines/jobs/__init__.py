"""The jobs the commands run: training, runs, recipes, split files (typed inputs, records out)."""
