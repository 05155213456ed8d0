"""Thinc's API surface that composa keeps for drop-in compatibility but does not build on.

Everything here exists so that code written against ``thinc.api`` runs unchanged:
typed aliases of ``Ops`` methods, accessors Thinc offers beside plain attributes,
and stubs for frameworks composa does not wrap. The core classes mix these in, so
``ops.alloc2f`` and ``model.has_attr`` keep working, while ``backends/ops.py`` and
``model.py`` read as composa. It imports only the bottom layer of the package
(``errors``, ``types``, ``util``), so backends, model and layers may all mix it in.
"""

# Ops: typed aliases (alloc1f ... reshape4, asarray1i, cblas, use_blis) --------------


# Model: accessors and helpers (has_attr/get_attr/set_attr, global_id, create_init) ---


# Frameworks composa does not wrap (TensorFlow, MXNet) ----------------------------------
