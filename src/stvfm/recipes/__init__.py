"""The models' recipes as YAML files (read by ``stvfm.training.recipes``); no code.

Imports from stvfm: none.
"""
