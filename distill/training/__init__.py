"""The training engine: the Lightning module, the data module, the teacher cache, sampling, callbacks, run folders."""
