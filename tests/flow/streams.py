"""What the flow tests check of every training stream (task.train_iterator)."""
import numpy as np

from perceiver.tasks.flow import task


def check_resume_and_process_split(config, data_dir, seed=3, steps=3):
  """The batch of step `steps` is the same resumed from step `steps` - 1,
  and as the concatenated halves of 2 processes; returns the batches of
  steps 1..`steps` of the uninterrupted stream."""
  kw = dict(data_dir=data_dir, seed=seed)
  stream = task.train_iterator(config, start_step=0, process_index=0,
                               process_count=1, **kw)
  whole = [next(stream) for _ in range(steps)]
  resumed = next(task.train_iterator(config, start_step=steps - 1,
                                     process_index=0, process_count=1, **kw))
  halves = [next(task.train_iterator(config, start_step=steps - 1,
                                     process_index=p, process_count=2, **kw))
            for p in (0, 1)]
  for key in whole[-1]:
    np.testing.assert_array_equal(resumed[key], whole[-1][key])
    np.testing.assert_array_equal(
        np.concatenate([h[key] for h in halves]), whole[-1][key])
  return whole
