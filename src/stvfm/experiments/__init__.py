"""The paper's experiments: its published figures and ``stvfm reproduce``."""
