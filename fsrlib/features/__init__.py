"""Stage 2, the features: a query's degradation (``degrade``, ``degrade_tensor``), the network input made from an
image (``inputs``), the backbones (``backbones``), and the one extraction path (``extract``) with its worker side (``loader``), its cache
(``cache``) and its distributed form (``distributed``)."""
