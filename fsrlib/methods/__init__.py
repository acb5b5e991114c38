"""Stage 3, the methods: the one registry of query enhancers (``registry``); the paper's generator and critic
(``models``), their losses (``losses``), feature pairs (``pairs``) and WGAN training (``train``); the ridge and MLP
baselines (``baselines``); image super-resolution (``isr``, ``isr_train``); and the resolution-robust student
(``student``: config, network and loss; ``student_pairs``: training pairs; ``student_train``: training and
checkpoints)."""
