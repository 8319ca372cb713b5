"""Entity sets: the StarCraft II experiment's stand-in ([P] §4.4, App. B).

  battle.py    the deterministic battle-set generator and its labels
  encoders.py  AlphaStar's Transformer and the Perceiver IO entity encoder
  models.py    the pointer and win heads around an encoder
  task.py      the trainer's interface (perceiver/train/task.py)
  recipes.py   the config builder of experiments/entities.py
"""
