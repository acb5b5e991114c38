"""Stage 1, the data: benchmarks as :class:`~fsrlib.data.datasets.RetrievalDataset` tables (``datasets``), where
they come from and how they are fetched and verified (``sources``, ``download``), how an image file is read
(``imageio``) and which photos a method may train on under each protocol (``protocols``)."""
