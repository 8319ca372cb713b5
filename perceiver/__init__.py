"""Perceiver IO (Jaegle et al., 2021, arXiv 2107.14795) in JAX/Haiku.

The public modules keep the names of DeepMind's release so that code written
for it runs unchanged: `perceiver.perceiver`, `perceiver.position_encoding`,
`perceiver.io_processors` and `perceiver.bytes_tokenizer`.
"""
