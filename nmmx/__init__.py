"""Plumbing shared by every nmmx package and command.

* :mod:`nmmx.files`: every file written atomically, output locations checked first;
* :mod:`nmmx.cache`: the one hash-keyed, schema-checked result cache;
* :mod:`nmmx.flags`: the command-line flags generated from :class:`golden.Config` and
  the exit-code discipline shared by ``python -m gen``, ``sim``, ``synth`` and ``dse``.

``files`` and ``cache`` know nothing about engines; ``flags`` reads only ``golden``.
``hw``, ``gen``, ``sim``, ``synth`` and ``dse`` may all import this package.
"""
