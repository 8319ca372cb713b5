"""The paper's tasks, one folder each, all in the same shape.

  entities/    entity sets, the StarCraft II stand-in ([P] §4.4, App. B)
  image/       ImageNet and MNIST classification ([P] App. A)
  language/    masked language modelling and GLUE ([P] §4.1, App. F)
  flow/        optical flow: AutoFlow-style generated training pairs,
               Sintel/KITTI/stereo readers, tiled full-resolution
               evaluation ([P] §4.2, App. H)

Each folder holds its task module(s) (the interface of
perceiver/train/task.py), `recipes.py` (the config builders that the thin
files in experiments/ call) and the task's own inputs and models. A task is
chosen by import path in `config.task.module`; there is no registry.
"""
