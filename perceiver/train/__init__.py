"""Training system: one data-parallel loop for every experiment.

  config_lib   the base ConfigDict every experiment extends; unknown keys fail.
  optim        optax optimisers (LAMB, AdamW), schedules, weight-decay masks.
  tasks        image classification: model, loss and metrics.
  checkpoint   Orbax checkpoints (async, atomic, keep-last-K + best) and
               init_from (our checkpoints or release pickles).
  metric_writer  terminal, progress line and TensorBoard (process 0 only).
  trainer      TrainState, the per-device step, train_and_evaluate, evaluate,
               export.
  distributed  multi-host start-up (jax.distributed).
  main_job     `make main`: MNIST train, test, export.
"""
