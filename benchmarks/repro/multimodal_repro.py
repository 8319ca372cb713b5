r"""A CPU-scale reproduction of [P] Table 4 on real films, with a baseline.

Not a test. Trains the CPU-sized multimodal autoencoder
(experiments/multimodal_autoencoding.py:cpu) at the three compression ratios
of Table 4 (N = 88, 44, 22 latents of D = 64: 87x, 173x, 346x) on
`embedded_av/cpu` (bigbuckbunny + Megamind, perceiver/tasks/multimodal/
embedded.py), each run through perceiver.train.trainer.train_and_evaluate
(the launch/train.py command is printed), then on the held-out seconds
reports video PSNR, audio PSNR and label top-1 next to a plain baseline with
the same number of values as the latent array (N * D): each frame
downsampled and upsampled (antialiased linear), the audio decimated and
interpolated (perceiver.tasks.multimodal.metrics.baseline_reconstruction).
Writes results.json and a picture (original / reconstructions / baseline of
a held-out clip) into --workdir, and copies the picture to --picture.

  bash scripts/fetch_video_data.sh    # Megamind.avi (Debian opencv-doc)
  .venv/bin/python benchmarks/repro/multimodal_repro.py --workdir=/tmp/mm_repro

`--video_weight=0.03` trains with [P]'s loss weights instead of the CPU
recipe's (its DEVIATION, in perceiver/tasks/multimodal/recipes.py).
`--audio_weight=W` likewise sets the audio term's weight;
`--variants=audio_gain=32` adds experiments/multimodal_autoencoding.py
variants to every run (and to the reconstructions), and
`--config=KEY=VALUE` (repeatable) sets any config field the same way,
e.g. `--config=model.encoder_kwargs.num_cross_attend_heads=8`.

Results and the exact settings: benchmarks/repro/MULTIMODAL.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

import numpy as np  # pylint: disable=wrong-import-position

from benchmarks.repro import language_repro  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import embedded  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import inputs  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import media  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import metrics  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import reconstruct  # pylint: disable=wrong-import-position
from perceiver.tasks.multimodal import recipes  # pylint: disable=wrong-import-position
from perceiver.train import config_lib  # pylint: disable=wrong-import-position
from perceiver.train import trainer  # pylint: disable=wrong-import-position

EXPERIMENT = os.path.join(_REPO, 'experiments', 'multimodal_autoencoding.py')


def _config(arg):
  return config_lib.load_experiment(EXPERIMENT, arg)


def _clips(data_dir, split):
  """[(video [T, S, S, 3] in [0, 1], audio [N_a], label)] of a split."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = embedded.get_builder('embedded_av/cpu', data_dir)
  out = []
  for ex in tfds.as_numpy(builder.as_dataset(split=split)):
    out.append((ex['video'].astype(np.float32) / 255,
                ex['audio'].astype(np.float32) / 32768, int(ex['label'])))
  return out, builder


def baseline(clips, num_values):
  video = [metrics.np_psnr(metrics.baseline_reconstruction(v, a, num_values)[0],
                           v, metrics.VIDEO_RANGE) for v, a, _ in clips]
  audio = [metrics.np_psnr(metrics.baseline_reconstruction(v, a, num_values)[1],
                           a, metrics.AUDIO_RANGE) for v, a, _ in clips]
  sizes = metrics.baseline_sizes(num_values, clips[0][0].shape,
                                 clips[0][1].shape[0])
  return {'video_psnr': float(np.mean(video)),
          'audio_psnr': float(np.mean(audio)), 'frame_side': sizes[0],
          'audio_samples': sizes[1]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--steps', type=int, default=1200)
  parser.add_argument('--video_weight', type=float, default=None,
                      help="the loss's video weight (default: the recipe's)")
  parser.add_argument('--audio_weight', type=float, default=None,
                      help="the loss's audio weight (default: the recipe's)")
  parser.add_argument('--latents', default='88,44,22')
  parser.add_argument('--variants', default='',
                      help='more experiment variants, e.g. audio_gain=32')
  parser.add_argument('--config', action='append', default=[],
                      help='KEY=VALUE config override for every run (and the '
                      'reconstructions); repeatable')
  parser.add_argument('--picture', default=os.path.join(
      _REPO, 'benchmarks', 'repro', 'figures',
      'multimodal_reconstructions.png'))
  args = parser.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  embedded.megamind_path()  # a clear error (how to fetch it) before training
  data_dir = os.path.join(args.workdir, 'tensorflow_datasets')
  results = {'steps': args.steps, 'video_weight': args.video_weight,
             'audio_weight': args.audio_weight,
             'variants': args.variants, 'runs': {}}
  extra = f',{args.variants}' if args.variants else ''
  overrides = language_repro.parse_overrides(args.config)
  for key in ('video_weight', 'audio_weight'):
    if getattr(args, key) is not None:
      overrides[f'task.{key}'] = getattr(args, key)
  flags = ''.join(f' --config.{k}={v}' for k, v in overrides.items())
  results['config'] = args.config

  def configured(arg):
    config = _config(arg)
    language_repro.set_overrides(config, overrides)
    return config

  path = os.path.join(args.workdir, 'results.json')
  if os.path.exists(path):
    with open(path) as f:
      results['runs'] = json.load(f).get('runs', {})

  for latents in map(int, args.latents.split(',')):
    arg = f'cpu,latents={latents},steps={args.steps}{extra}'
    workdir = os.path.join(args.workdir, f'cpu{latents}')
    config = configured(arg)
    config.input.data_dir = data_dir
    print(f'python launch/train.py --config=experiments/multimodal_autoencoding'
          f'.py:{arg} --workdir={workdir} --config.input.data_dir={data_dir}'
          f'{flags}', flush=True)
    if str(latents) in results['runs']:
      print('  done before; kept.', flush=True)
      continue
    load_before = os.getloadavg()
    start = time.time()
    final = trainer.train_and_evaluate(config, workdir)
    wall = time.time() - start
    # N and D of the model trained (a --config override may change them).
    model = config.model
    results['runs'][str(latents)] = {
        'latents': model.z_index_dim,
        'compression': recipes.compression(config),
        'values': model.z_index_dim * model.num_z_channels,
        'wall_s': wall, 'load_before': load_before,
        'load_after': os.getloadavg(),
        'video_weight': config.task.video_weight,
        'audio_weight': config.task.audio_weight, 'metrics': final}
    print(json.dumps(results['runs'][str(latents)], indent=1), flush=True)
    with open(path, 'w') as f:
      json.dump(results, f, indent=1)

  # ---- The baseline on the same held-out clips ---------------------------
  clips, builder = _clips(data_dir, 'test')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  train_labels = [int(ex['label']) for ex in
                  tfds.as_numpy(builder.as_dataset(split='train'))]
  majority = int(np.bincount(train_labels).argmax())
  results['majority_top1'] = float(np.mean([l == majority
                                            for _, _, l in clips]))
  results['num_test_clips'] = len(clips)
  for run in results['runs'].values():
    run['baseline'] = baseline(clips, run['values'])

  # ---- Where the audio's energy is -------------------------------------
  # One value per latent per time slot samples the clip's time at
  # N / (clip seconds): its Nyquist frequency bounds what a decoder that
  # reads the latents piecewise in time can reproduce.
  config = _config('cpu')
  rate = config.model.audio_samples_per_frame * inputs.FPS
  seconds = config.model.num_frames / inputs.FPS
  cutoffs = sorted({50, 100, 200, 300, 650, 1000, 2000} | {
      r['latents'] / seconds / 2 for r in results['runs'].values()})
  spectrum = {}
  for split in ('train', 'test'):
    audio = np.stack([a for _, a, _ in _clips(data_dir, split)[0]])
    spectrum[split] = metrics.energy_below(audio, rate, cutoffs)
  results['audio_energy_below_hz'] = spectrum
  print('share of the audio energy at or below f (training / held-out):')
  for c in cutoffs:
    print(f'  {c:7.1f} Hz: {spectrum["train"][c]:.3f} / '
          f'{spectrum["test"][c]:.3f}')

  # ---- The picture: a held-out clip of bigbuckbunny (second 4) -------------
  to_u8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
  rows, names, clip = [], [], None
  for latents, run in sorted(results['runs'].items(), key=lambda r: -int(r[0])):
    config = configured(f'cpu,latents={latents}{extra}')
    params, state = reconstruct.load_params(
        config, os.path.join(args.workdir, f'cpu{latents}'))
    if clip is None:
      clip = reconstruct.read_clips(config, embedded.bigbuckbunny_path(),
                                    start=4.0)
    result = reconstruct.reconstruct(config, params, state, clip,
                                     reconstruct.label_names(config))
    reconstruct.write(result, os.path.join(args.workdir, f'recon{latents}'))
    run['picture_clip'] = result.report['clips'][0]
    if not rows:
      rows, names = [to_u8(result.video)], ['original']
    rows.append(to_u8(result.video_out))
    names.append(f'Perceiver IO N={latents}')
  smallest = min(results['runs'].values(), key=lambda r: r['values'])
  largest = max(results['runs'].values(), key=lambda r: r['values'])
  for run in ([largest] if largest is smallest else [largest, smallest]):
    v, _, _ = metrics.baseline_reconstruction(
        rows[0].astype(np.float32) / 255, np.zeros(10240, np.float32),
        run['values'])
    rows.append(to_u8(v))
    names.append(f'baseline {run["values"]} values')
  grid = media.upscale(media.frame_grid(rows, every=2), 2)
  picture = media.write_png(os.path.join(args.workdir, 'reconstructions.png'),
                            grid)
  if args.picture:
    subprocess.run(['cp', picture, args.picture], check=True)
  results['picture_rows'] = names
  with open(path, 'w') as f:
    json.dump(results, f, indent=1)

  # ---- The table ---------------------------------------------------------
  print('\n| N (compression) | train wall | video PSNR | audio PSNR | top-1 '
        '| baseline video PSNR | baseline audio PSNR |')
  print('|---|---|---|---|---|---|---|')
  for latents, run in sorted(results['runs'].items(), key=lambda r: -int(r[0])):
    m, b = run['metrics'], run['baseline']
    print(f'| {latents} ({run["compression"]:.0f}x) | {run["wall_s"] / 60:.1f} '
          f'min | {m["eval/video_psnr"]:.2f} | {m["eval/audio_psnr"]:.2f} | '
          f'{100 * m["eval/label_top1"]:.0f}% | {b["video_psnr"]:.2f} | '
          f'{b["audio_psnr"]:.2f} |')
  print(f'majority-class top-1 on the {len(clips)} held-out clips: '
        f'{100 * results["majority_top1"]:.0f}%; picture rows: {names}')


if __name__ == '__main__':
  main()
