"""Plumbing shared by every nmmx package: files written atomically, output checks.

Nothing here knows about engines; ``golden``, ``hw``, ``gen``, ``sim``, ``synth`` and
``dse`` may all import it.
"""
