"""Release-format checkpoints load into the models and give the same outputs."""
import jax
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver import perceiver
from tests import golden


@pytest.mark.parametrize('family,ext', [('language_mlm', '.pickle'),
                                        ('imagenet_conv', '.pystate'),
                                        ('optical_flow', '.pystate')])
def test_release_format_round_trip_runs_the_model(tmp_path, family, ext):
  spec = golden.load_json(family + '_tiny')
  params, state, inputs, outputs = golden.load_npz(family + '_tiny')
  path = str(tmp_path / (family + ext))
  # The golden npz stores batch norm's EMA counters as float32 filler (0.0,
  # 0.1); a release .pystate holds Haiku's int32 counters, and load_params
  # refuses a float where the model has an integer. Evaluation reads only
  # the EMA averages, so the outputs do not depend on the counters.
  state = {module: {name: (np.asarray(value).astype(np.int32)
                           if name == 'counter' else value)
                    for name, value in entries.items()}
           for module, entries in state.items()}
  checkpoint_io.save_params(path, params, state if ext == '.pystate' else None)
  model, names = golden.build(spec)
  args = [inputs[n] for n in names]
  expected, expected_state = jax.eval_shape(
      lambda *a: model.init(jax.random.PRNGKey(0), *a, is_training=True), *args)
  loaded, loaded_state = checkpoint_io.load_params(
      path, expected=expected,
      expected_state=expected_state if ext == '.pystate' else None)
  out, _ = model.apply(loaded, loaded_state or state, None, *args,
                       is_training=False)
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)


def test_scanned_model_exports_to_the_release_layout(tmp_path):
  """Train scanned, export per-layer: the release's colab tree loads it."""
  spec = golden.load_json('imagenet_fourier_tiny')
  params, state, inputs, outputs = golden.load_npz('imagenet_fourier_tiny')
  scanned_params = perceiver.from_release_layout(params)
  path = str(tmp_path / 'exported.pystate')
  checkpoint_io.save_params(path, perceiver.to_release_layout(scanned_params),
                            state)
  model, _ = golden.build(spec)
  expected, _ = jax.eval_shape(lambda x: model.init(
      jax.random.PRNGKey(0), x, is_training=True), inputs['images'])
  loaded, _ = checkpoint_io.load_params(path, expected=expected)
  out, _ = model.apply(loaded, state, None, inputs['images'], is_training=False)
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)
