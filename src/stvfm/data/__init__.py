"""Data layer: dataset registry, readers, the windowing protocol, scaling, and the DataModule."""
