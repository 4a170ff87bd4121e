"""avscene jobs that join the feature store and the classifiers, and the ``avscene`` CLI."""
