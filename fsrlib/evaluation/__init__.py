"""Stage 4, the evaluation: rankings and mAP as revisitop computes them (``retrieval``), nearest-neighbour search at
scale (``search``), learned whitening (``whitening``), bootstrap intervals and paired verdicts (``stats``), the
tables and readings the chapters print (``analysis``), what the benchmark scripts recorded, read back
(``recorded``), and the low bit-rate study (``bitrate``). It imports from the
data and feature stages, never from the methods."""
