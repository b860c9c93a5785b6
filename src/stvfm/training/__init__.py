"""Training and evaluation of registered forecasters: the shared task, metrics, optimiser and schedule."""
