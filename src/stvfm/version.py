"""The package's version, in a leaf module so that the layers that stamp it on what they write (export
cards, the service) need not import the package root, which reaches up to ``stvfm.export``.

Imports from stvfm: none.
"""

__version__ = "0.1.0"
