"""Perceiver IO <-> Hugging Face transformers (PyTorch), both ways.

Glossary of shapes: B batch, M inputs, N latents, D latent channels,
O outputs, C/E channels (as in perceiver/perceiver.py).

transformers ships the six model families of the release ([P] §4.1-4.3,
App. A) as hard-wired PyTorch classes: `PerceiverForMaskedLM`,
`PerceiverForImageClassification{Fourier,Learned,ConvProcessing}`,
`PerceiverForOpticalFlow` and `PerceiverForMultimodalAutoencoding`. This
package moves weights between those classes and our Haiku parameter trees:

  specs.py    what model a checkpoint holds: a "spec" (the builder's kwargs,
              the format of perceiver/release_specs/*.json) from a training
              config, a release family or a JSON file; checkpoints of every
              kind read into the release's per-layer layout.
  mapping.py  spec -> transformers class + PerceiverConfig (refusing, by
              name, every option the class cannot express), and the weight
              mapping both ways. numpy only: no torch needed.
  parity.py   runs both implementations on the same random inputs and
              compares them (rtol 1e-4, atol 1e-5 in float32).
  export.py   writes a directory that `from_pretrained` loads
              (config.json, model.safetensors, tokenizer files for MLM) and
              checks it with parity.py.
  load.py     the way back: a transformers directory (ours or a hub
              checkpoint) -> (params, state, spec) for our builders.

PyTorch and transformers are an optional extra (`pip install -e .[hf]`);
only export.py, load.py and parity.py import them, when called.
"""
