"""Training system: one data-parallel loop for every task.

  task           the one task interface (a typing.Protocol) the loop calls.
  config_lib     the base ConfigDict, the task's defaults, validation (unknown
                 keys fail) and the experiments' variant parser.
  optim          optax optimisers (LAMB, AdamW), schedules, weight-decay masks.
  checkpoint     Orbax checkpoints (async, atomic, keep-last-K + best) and
                 the warm start (our checkpoints or release pickles).
  metric_writer  terminal, progress line and TensorBoard (process 0 only).
  logs           what reaches the terminal: the project's lines, not the
                 libraries' chatter.
  trainer        TrainState, the per-device step, train_and_evaluate,
                 evaluate, export.
  distributed    multi-host start-up (jax.distributed).
  main_job       `make main`: MNIST train, test, export.

The tasks themselves live in perceiver/tasks/<name>/.
"""
