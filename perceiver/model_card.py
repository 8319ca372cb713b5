r"""Model card: parameters and forward FLOPs of each released Perceiver IO.

For every registered family this builds the full-size architecture, counts
its parameters with `jax.eval_shape` (nothing is allocated) and measures its
forward FLOPs per example with XLA's cost analysis of the *lowered* program
(`jax.jit(apply).trace(...).lower(...).cost_analysis()`; the arguments are
`jax.ShapeDtypeStruct`s, so no full-size array is ever created and nothing is
compiled). XLA counts a multiply-add as 2 FLOPs, the paper's convention
([P] App. D), so the numbers compare directly with the paper's.

  python launch/model_card.py
  python launch/model_card.py --families=imagenet_fourier,language_mlm \
      --batch_size=1 --json_out=/tmp/model_card.json

Library use (the tests run it on the tiny golden configs):

  model_card('imagenet_fourier')                    # full-size release
  model_card('imagenet_fourier', spec=golden_tiny)  # any spec of that kind

Caveat: XLA's cost analysis counts the body of a loop (`lax.scan`, `lax.map`,
`hk.layer_stack`, chunked attention) once, whatever its trip count. The
registered configs contain no such loops (the video full-output decode is
lowered with chunks=1, a single trip); each card reports `loops`, the trip
counts it found, and its note says when the FLOPs are a lower bound.

Specs. A spec is a dict in the form of the release's JSON specs
(perceiver/release_specs/full_<family>.json, tests/golden_data/*_tiny.json):
'builder' names the perceiver/builders.py function and the other keys are
its configuration. `builders.build(spec)` gives the forward of any such spec
and `builders.example_inputs(spec, batch)` its input shapes; the golden tests
build their models through the same two functions.

Adding a family: `register(Family(name, spec=..., paper_params=...,
paper_flops=...))`. `spec` is a release spec name (under
perceiver/release_specs) or a callable returning the spec dict; the spec's
'builder' key picks the default `build` and `example_inputs` from
builders.SPEC_BUILDERS, or pass your own.
"""
import dataclasses
import json
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import haiku as hk
import jax
import jax.extend  # pylint: disable=unused-import  (jax.extend.core.Jaxpr)

from perceiver import builders
from perceiver import release_specs
from perceiver.tasks.language import models as language_models

Spec = builders.Spec
Forward = builders.Forward
InputsFn = builders.InputsFn

#  ------------------------------------------------------------
#  -----------------------  Registry  -------------------------
#  ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
  """Another forward of the same family (same params and inputs)."""
  label: str
  build: Callable[[Spec], Forward]
  paper_flops: Optional[float] = None
  note: str = ''


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family on the card.

  Attributes:
    name: the family's name (--families).
    spec: a golden JSON name (loaded from the golden dir) or a callable that
      returns the full-size spec dict.
    paper_params / paper_flops: the paper's numbers (None: not reported).
    paper_flops_text: how to print paper_flops, when a number is not enough.
    note: free text for the table.
    build: spec -> forward(*inputs, is_training); default by spec['builder'].
    example_inputs: (spec, batch) -> input shape structs; likewise.
    variants: extra forwards to cost (e.g. the video full-output decode).
  """
  name: str
  spec: Union[str, Callable[[], Spec]]
  paper_params: Optional[float] = None
  paper_flops: Optional[float] = None
  paper_flops_text: str = ''
  note: str = ''
  build: Optional[Callable[[Spec], Forward]] = None
  example_inputs: Optional[InputsFn] = None
  variants: tuple[Variant, ...] = ()

  def load_spec(self) -> Spec:
    if callable(self.spec):
      return self.spec()
    return release_specs.load(self.spec)


REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
  if family.name in REGISTRY:
    raise ValueError(f'Family {family.name!r} is already registered.')
  REGISTRY[family.name] = family
  return family


register(Family(
    'imagenet_fourier', spec='full_imagenet_fourier', paper_params=48.4e6,
    paper_flops=407e9, note='ImageNet, 2D Fourier features (config A)'))
register(Family(
    'imagenet_learned', spec='full_imagenet_learned', paper_params=62.3e6,
    paper_flops=407e9,
    note=('ImageNet, learned position (config A); [P] repeats the 2D FF '
          "model's 407B, but 512-channel inputs (vs 261) make the encoder "
          'cross-attention ~2x dearer (K/V projections, logits, weighted sum; '
          '+~70B)')))
register(Family(
    'imagenet_conv', spec='full_imagenet_conv', paper_params=48.6e6,
    paper_flops=369e9, note='ImageNet, conv+maxpool preprocessing (config A)'))
register(Family(
    'language_mlm', spec='full_language_mlm', paper_params=201e6,
    paper_flops=113e9,
    note=('bytes MLM, M = O = 2048; a hand count of the matmuls gives '
          '~60.5G MACs = ~121B; [P] is ~7% lower and does not say what it '
          'leaves out')))
register(Family(
    'optical_flow', spec='full_optical_flow', paper_params=27.9e6,
    paper_flops=987e9,
    note=('368x496; the released checkpoint (41.06M) is larger than [P] '
          'reports (27.9M / ~987B): the mismatch is in the paper/release, '
          'not here')))
register(Family(
    'video_autoencoding', spec='full_video_autoencoding', paper_params=20.0e6,
    paper_flops=310e9, paper_flops_text='310B train',
    note=('subsampled decode as in the golden JSON (392 px + 15 audio '
          'patches + label); [P] trains with 512 px + 512 audio'),
    variants=(Variant('[P] train decode', builders.build_video_train_decode,
                      paper_flops=310e9,
                      note='512 px + 512 audio patches + label'),
              Variant('full-output decode', builders.build_video_full_decode,
                      paper_flops=6.85e12,
                      note=('eval: all 802,816 px + 1,920 audio patches + '
                            'label, [P] 6.85T eval')),)))


def _language_spec(name: str) -> Callable[[], Spec]:
  def spec():
    return dict(language_models.get_config(name), builder='mlm')
  return spec


register(Family(
    'mlm_bytes_plusplus', spec=_language_spec('mlm_bytes_plusplus'),
    paper_params=425e6, paper_flops=241e9,
    note='Perceiver IO++ bytes: 40 layers, N x D = 256 x 1536 ([P] Table 11)'))
register(Family(
    'mlm_spm_base', spec=_language_spec('mlm_spm_base'),
    paper_params=223e6, paper_flops=119e9,
    note='Perceiver IO Base, SentencePiece 32k, M = O = 512 ([P] Table 11)'))


#  ------------------------------------------------------------
#  --------------------  Counting helpers  --------------------
#  ------------------------------------------------------------


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def loop_trip_counts(jaxpr) -> list[Optional[int]]:
  """Trip counts of the loops in a jaxpr (None: a while loop, unknown)."""
  trips = []
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'scan':
      trips.append(int(eqn.params['length']))
    elif name == 'while':
      trips.append(None)
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        trips.extend(loop_trip_counts(sub))
  return trips


def init_shapes(forward: Forward, inputs: Sequence[jax.ShapeDtypeStruct]):
  """(params, state) as shape structs, via jax.eval_shape (no allocation)."""
  model = hk.transform_with_state(forward)
  return jax.eval_shape(
      lambda *a: model.init(jax.random.PRNGKey(0), *a, is_training=True),
      *inputs)


def forward_cost(forward: Forward, params, state,
                 inputs: Sequence[jax.ShapeDtypeStruct]) -> dict[str, Any]:
  """XLA cost analysis of the lowered (uncompiled) evaluation forward.

  Returns {'flops', 'transcendentals', 'bytes_accessed', 'loops',
  'lower_s'}, for the whole batch in `inputs`.
  """
  model = hk.transform_with_state(forward)

  def apply(p, s, *a):
    return model.apply(p, s, None, *a, is_training=False)[0]

  start = time.perf_counter()
  traced = jax.jit(apply).trace(params, state, *inputs)
  loops = [t for t in loop_trip_counts(traced.jaxpr.jaxpr) if t != 1]
  cost = traced.lower().cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per program.
    cost = cost[0]
  return {'flops': float(cost['flops']),
          'transcendentals': float(cost.get('transcendentals', 0.0)),
          'bytes_accessed': float(cost.get('bytes accessed', 0.0)),
          'loops': loops, 'lower_s': time.perf_counter() - start}


#  ------------------------------------------------------------
#  -----------------------  The card  -------------------------
#  ------------------------------------------------------------


def _resolve(family: str, spec: Optional[Spec]):
  """-> (Family or None, spec, build, example_inputs)."""
  fam = REGISTRY.get(family)
  if fam is None and spec is None:
    raise KeyError(f'Unknown family {family!r}; registered: '
                   f'{sorted(REGISTRY)}. Pass spec= for an unregistered one.')
  if spec is None:
    spec = fam.load_spec()
  build_fn, inputs_fn = builders.SPEC_BUILDERS.get(spec.get('builder'),
                                                   (None, None))
  if fam is not None:
    build_fn = fam.build or build_fn
    inputs_fn = fam.example_inputs or inputs_fn
  if build_fn is None or inputs_fn is None:
    raise ValueError(f'No builder for spec builder {spec.get("builder")!r}; '
                     f'known: {sorted(builders.SPEC_BUILDERS)}.')
  return fam, spec, build_fn, inputs_fn


def _ratio_note(what: str, ours: float, paper: Optional[float]) -> str:
  if not paper:
    return ''
  return f'{what} {ours / paper:.2f}x paper'


def model_card(family: str, spec: Optional[Spec] = None, *,
               batch_size: int = 1,
               inputs: Optional[Sequence[jax.ShapeDtypeStruct]] = None,
               variants: bool = True,
               ) -> dict[str, Any]:
  """Parameters and forward FLOPs per example of one family.

  Args:
    family: a registered family name, or any label when `spec` is given.
    spec: the config (a golden JSON dict); default: the family's full size.
    batch_size: the batch the forward is lowered at (FLOPs are per example).
    inputs: shape structs overriding the spec's example inputs (their
      leading axis is the batch).
    variants: also cost the family's variants (e.g. the full video decode).

  Returns:
    A dict: family, params, state_params, paper_params, gflops (per example),
    paper_gflops, paper_flops_text, transcendentals, loops, lower_s, note
    and 'variants' (a list of dicts with label, gflops, paper_gflops, note).
  """
  fam, spec, build_fn, inputs_fn = _resolve(family, spec)
  if inputs is None:
    inputs = inputs_fn(spec, batch_size)
  inputs = tuple(builders.shape_struct(x.shape, x.dtype) for x in inputs)
  batch = inputs[0].shape[0]
  forward = build_fn(spec)
  params, state = init_shapes(forward, inputs)
  cost = forward_cost(forward, params, state, inputs)
  paper_params = fam.paper_params if fam else None
  paper_flops = fam.paper_flops if fam else None
  num_params = hk.data_structures.tree_size(params)
  gflops = cost['flops'] / batch / 1e9
  notes = [fam.note if fam else '',
           _ratio_note('params', num_params, paper_params),
           _ratio_note('FLOPs', gflops * 1e9, paper_flops)]
  if cost['loops']:
    notes.append(f'has loops {cost["loops"]}: FLOPs are a lower bound')
  card = {
      'family': family,
      'params': num_params,
      'state_params': hk.data_structures.tree_size(state),
      'paper_params': paper_params,
      'gflops': gflops,
      'paper_gflops': paper_flops / 1e9 if paper_flops else None,
      'paper_flops_text': fam.paper_flops_text if fam else '',
      'transcendentals_per_example': cost['transcendentals'] / batch,
      'loops': cost['loops'],
      'lower_s': cost['lower_s'],
      'batch_size': batch,
      'input_shapes': [list(x.shape) for x in inputs],
      'note': '; '.join(n for n in notes if n),
      'variants': [],
  }
  for variant in (fam.variants if fam and variants else ()):
    v_forward = variant.build(spec)
    v_params, v_state = init_shapes(v_forward, inputs)
    v_cost = forward_cost(v_forward, v_params, v_state, inputs)
    v_gflops = v_cost['flops'] / batch / 1e9
    v_notes = [variant.note,
               _ratio_note('FLOPs', v_gflops * 1e9, variant.paper_flops)]
    if v_cost['loops']:
      v_notes.append(f'has loops {v_cost["loops"]}: FLOPs are a lower bound')
    card['variants'].append({
        'label': variant.label,
        'params': hk.data_structures.tree_size(v_params),
        'gflops': v_gflops,
        'paper_gflops': (variant.paper_flops / 1e9
                         if variant.paper_flops else None),
        'loops': v_cost['loops'],
        'lower_s': v_cost['lower_s'],
        'note': '; '.join(n for n in v_notes if n),
    })
  return card


#  ------------------------------------------------------------
#  -----------------------  Printing  -------------------------
#  ------------------------------------------------------------


def _fmt_count(n: Optional[float]) -> str:
  if n is None:
    return '-'
  return f'{n / 1e6:.2f}M' if n < 1e9 else f'{n / 1e9:.2f}B'


def _fmt_flops(gflops: Optional[float]) -> str:
  """GFLOPs as the paper writes FLOPs: 407B, 6.85T."""
  if gflops is None:
    return '-'
  if gflops >= 1000:
    return f'{gflops / 1000:.3g}T'
  return f'{gflops:.4g}B'


def format_table(cards: Sequence[Mapping[str, Any]]) -> str:
  header = ('family', 'params', 'paper params', 'fwd GFLOPs', 'paper FLOPs',
            'note')
  rows = []
  for card in cards:
    rows.append((card['family'], _fmt_count(card['params']),
                 _fmt_count(card['paper_params']), f'{card["gflops"]:.1f}',
                 card['paper_flops_text'] or _fmt_flops(card['paper_gflops']),
                 card['note']))
    for v in card['variants']:
      rows.append((f'  {card["family"]} ({v["label"]})',
                   _fmt_count(v['params']), '', f'{v["gflops"]:.1f}',
                   _fmt_flops(v['paper_gflops']), v['note']))
  widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
  lines = []
  for i, row in enumerate([header] + rows):
    cells = [c.ljust(w) if j in (0,) else c.rjust(w)
             for j, (c, w) in enumerate(zip(row[:5], widths))]
    lines.append(' | '.join(cells + [row[5]]).rstrip())
    if i == 0:
      lines.append('-+-'.join('-' * w for w in widths) + '-+-' + '-' * 4)
  return '\n'.join(lines)


def print_cards(families: Optional[Sequence[str]] = None, *,
                batch_size: int = 1, variants: bool = True,
                json_out: Optional[str] = None) -> list[dict[str, Any]]:
  """Prints the card of `families` (default: all registered) as a table,
  optionally writes them as JSON, and returns them."""
  names = list(families or REGISTRY)
  unknown = sorted(set(names) - set(REGISTRY))
  if unknown:
    raise KeyError(f'Unknown families {unknown}; registered: '
                   f'{sorted(REGISTRY)}.')
  cards = []
  for name in names:
    start = time.perf_counter()
    cards.append(model_card(name, batch_size=batch_size, variants=variants))
    print(f'[{name}: {time.perf_counter() - start:.1f}s]', flush=True)
  print()
  print(f'Perceiver IO model card (forward FLOPs per example, XLA cost '
        f'analysis, batch {batch_size}, float32, jax {jax.__version__})')
  print(format_table(cards))
  if json_out:
    with open(json_out, 'w') as f:
      json.dump(cards, f, indent=1)
    print(f'\nWrote {json_out}')
  return cards
