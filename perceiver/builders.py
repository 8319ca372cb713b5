"""One builder per released model family, driven by plain keyword configs.

Glossary of shapes:
  B: batch.  H, W: image size.  T: frames (video) or tokens (text).
  V: vocabulary.  K: classes.  N_a: audio samples.

Each builder returns a forward function to call inside `hk.transform` /
`hk.transform_with_state`. The kwargs are those of DeepMind's release and its
colabs, and the parameter trees match the six released checkpoints
(perceiver/release_specs/full_*.json).

  image_classifier   ImageNet: Fourier, learned position, conv ([P] App. A);
                     `projection_decoder=True` gives the original Perceiver.
  mlm                masked language model on bytes or SentencePiece ([P] §4.1).
  optical_flow       [P] §4.2; `tiled_flow` runs it on any larger image.
  video_autoencoder  Kinetics audio+video+label ([P] §4.3); `full_outputs=True`
                     decodes all 802,816 + 1,920 + 1 outputs in one call.
"""
import dataclasses
import functools
import itertools
from typing import Any, Callable, Mapping, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import attention
from perceiver import checks
from perceiver import io_processors
from perceiver import perceiver
from perceiver import position_encoding

#  ------------------------------------------------------------
#  ----------------------  ImageNet  --------------------------
#  ------------------------------------------------------------


@checks.keyword_arguments
def image_classifier(*, num_classes: int, input_preprocessor: Mapping[str, Any],
                     encoder: Mapping[str, Any],
                     decoder: Optional[Mapping[str, Any]] = None,
                     projection_decoder: bool = False,
                     input_channels: Optional[int] = 3):
  """Returns forward(images [B, H, W, C], *, is_training) -> [B, K] logits."""
  if not projection_decoder and decoder is None:
    raise ValueError('image_classifier needs decoder kwargs (or '
                     'projection_decoder=True for the average+project head).')

  def forward(images, *, is_training):
    if images.ndim != 4 or (input_channels and images.shape[-1] != input_channels):
      raise ValueError(f'image_classifier expects images [B, H, W, '
                       f'{input_channels or "C"}]; got {tuple(images.shape)}.')
    prep = io_processors.ImagePreprocessor(**input_preprocessor)
    enc = perceiver.PerceiverEncoder(**encoder)
    if projection_decoder:
      dec = perceiver.ProjectionDecoder(num_classes=num_classes)
    else:
      dec = perceiver.ClassificationDecoder(num_classes, **decoder)
    model = perceiver.Perceiver(encoder=enc, decoder=dec,
                                input_preprocessor=prep)
    return model(images, is_training=is_training)

  return forward


#  ------------------------------------------------------------
#  --------------------  Language (MLM)  ----------------------
#  ------------------------------------------------------------


MLM_INPUT_POSITIONS = ('trainable', 'fourier')


@checks.keyword_arguments
def mlm_input_positions(embedded, *, max_seq_len: int,
                        input_position_encoding: str = 'trainable',
                        input_position_init_scale: float = 0.02,
                        input_fourier_bands: int = 64):
  """Adds the MLM's input positions to embedded tokens [B, M, E], M <= T.

  'trainable' (the release): a learned [T, E] table (truncated normal of
  stddev `input_position_init_scale`, 0.02 in the release) added to the
  embeddings; returns [B, M, E]. 'fourier': [P] App. G features of the
  token index on the T-slot grid (`input_fourier_bands` bands, plus the raw
  position) concatenated to the embeddings; returns [B, M, E + 2K + 1].
  Either way slot m gets position m, so a prefix of M < T slots gets the
  first M positions (the GLUE models' shorter inputs).
  """
  batch, length = embedded.shape[:2]
  if length > max_seq_len:
    raise ValueError(f'{length} tokens exceed the {max_seq_len} input '
                     'positions (max_seq_len).')
  if input_position_encoding == 'trainable':
    table = position_encoding.TrainablePositionEncoding(
        index_dim=max_seq_len, num_channels=embedded.shape[-1],
        init_scale=input_position_init_scale)(batch)  # [B, T, E]
    return embedded + table[:, :length]
  if input_position_encoding == 'fourier':
    features = position_encoding.FourierPositionEncoding(
        index_dims=(max_seq_len,), num_bands=input_fourier_bands)(batch)
    features = features[:, :length].astype(embedded.dtype)  # [B, M, 2K + 1]
    return jnp.concatenate([embedded, features], axis=-1)
  raise ValueError(
      f'input_position_encoding={input_position_encoding!r}; use one of '
      f'{MLM_INPUT_POSITIONS}.')


@checks.keyword_arguments
def token_embedding(vocab_size: int, d_model: int,
                    init_scale: float = 1.0) -> hk.Embed:
  """The MLM's token table: hk.Embed, whose default init (the release's) is
  TruncatedNormal(1.0); another `init_scale` sets that stddev."""
  if init_scale == 1.0:
    return hk.Embed(vocab_size=vocab_size, embed_dim=d_model)
  return hk.Embed(vocab_size=vocab_size, embed_dim=d_model,
                  w_init=hk.initializers.TruncatedNormal(stddev=init_scale))


@checks.keyword_arguments
def mlm(*, vocab_size: int, d_model: int, max_seq_len: int,
        encoder: Mapping[str, Any], decoder: Mapping[str, Any],
        input_position_encoding: str = 'trainable',
        input_position_init_scale: float = 0.02,
        input_fourier_bands: int = 64,
        embedding_init_scale: float = 1.0):
  """Returns forward(inputs [B, T], input_mask [B, T], *, is_training).

  The released bytes model ([code] MLM colab): Embed(V x d_model) plus a
  learned position table, a Perceiver with a BasicDecoder of T learned
  queries, and logits tied to the input embedding (EmbeddingDecoder). The
  decoder's queries are masked with the input mask, as in the colab.
  The input_position_* arguments (`mlm_input_positions`) default to the
  release; the decoder queries' init scale is
  decoder['trainable_position_encoding_kwargs']['init_scale'] (0.02);
  `embedding_init_scale` is the token table's (and so the tied logits')
  init stddev, hk.Embed's default 1.0 in the release.

  Token ids must be integers in [0, V). Called outside jax.jit, the forward
  checks them; under jit they are tracers and `hk.Embed` clamps an id out of
  range to [0, V - 1] silently (`perceiver.checks.token_ids` checks a host
  batch before a jitted call).
  """
  if input_position_encoding not in MLM_INPUT_POSITIONS:
    raise ValueError(
        f'input_position_encoding={input_position_encoding!r}; use one of '
        f'{MLM_INPUT_POSITIONS}.')

  def forward(inputs, input_mask, *, is_training):
    if inputs.ndim != 2 or inputs.shape[1] != max_seq_len:
      raise ValueError(f'mlm expects token ids [B, {max_seq_len}] (pad to '
                       f'max_seq_len); got {tuple(inputs.shape)}.')
    if tuple(input_mask.shape) != tuple(inputs.shape):
      raise ValueError(f'input_mask {tuple(input_mask.shape)} must have the '
                       f'shape of inputs {tuple(inputs.shape)}.')
    checks.non_empty('mlm', 'inputs [B, T]', inputs, {0: 'B'})
    checks.token_ids('mlm', inputs, vocab_size)
    embedding_layer = token_embedding(vocab_size, d_model,
                                      embedding_init_scale)
    embedded = mlm_input_positions(
        embedding_layer(inputs), max_seq_len=max_seq_len,
        input_position_encoding=input_position_encoding,
        input_position_init_scale=input_position_init_scale,
        input_fourier_bands=input_fourier_bands)
    model = perceiver.Perceiver(
        encoder=perceiver.PerceiverEncoder(**encoder),
        decoder=perceiver.BasicDecoder(**decoder))
    outputs = model(embedded, is_training=is_training, input_mask=input_mask,
                    query_mask=input_mask)
    return io_processors.EmbeddingDecoder(
        embedding_matrix=embedding_layer.embeddings)(outputs)

  return forward


#  ------------------------------------------------------------
#  --------------------  Optical flow  ------------------------
#  ------------------------------------------------------------

FLOW_SCALE_FACTOR = 20  # [code] flow colab multiplies the output by this.
TRAIN_SIZE = (368, 496)  # [code] TRAIN_SIZE; the network's input size.


@checks.keyword_arguments
def optical_flow(*, input_preprocessor: Mapping[str, Any],
                 encoder: Mapping[str, Any], decoder: Mapping[str, Any],
                 flow_scale_factor: float = FLOW_SCALE_FACTOR,
                 conv_stem: Optional[Mapping[str, Any]] = None):
  """Returns forward(images [B, 2, H, W, 3], *, is_training) -> [B, H, W, 2].

  Images are scaled to [-1, 1]. The preprocessor sees patches_for_flow
  (a zero-padded 3x3 patch per pixel per frame, [P] §4.2).

  `conv_stem`: None (the release) or io_processors.FlowConvStem kwargs.
  DEVIATION when set: the stem's per-pixel features of both frames are
  concatenated to the preprocessed inputs, which are also the decoder's
  queries; the release's modules keep their names.
  """
  decoder = dict(decoder)
  image_shape = tuple(decoder['output_image_shape'])
  if isinstance(decoder.get('output_w_init'), str):
    decoder['output_w_init'] = _INITS[decoder['output_w_init']]

  def forward(images, *, is_training):
    if images.ndim != 5 or images.shape[1] != 2 or images.shape[-1] != 3:
      raise ValueError('optical_flow expects a frame pair [B, 2, H, W, 3]; got '
                       f'{tuple(images.shape)}.')
    if tuple(images.shape[2:4]) != image_shape:
      raise ValueError(
          f'optical_flow was built for {image_shape} frames; got '
          f'{tuple(images.shape[2:4])}. Use tiled_flow for larger images.')
    preprocessor = io_processors.ImagePreprocessor(**input_preprocessor)
    if conv_stem is not None:
      stem = io_processors.FlowConvStem(**conv_stem)
      release_preprocessor = preprocessor

      def preprocessor(patches, **kwargs):
        inputs, sizes, without_pos = release_preprocessor(patches, **kwargs)
        features = stem(images)  # [B, H, W, C_stem]
        features = features.reshape(inputs.shape[:2] + features.shape[-1:])
        return jnp.concatenate([inputs, features], -1), sizes, without_pos

    model = perceiver.Perceiver(
        input_preprocessor=preprocessor,
        encoder=perceiver.PerceiverEncoder(**encoder),
        decoder=perceiver.FlowDecoder(**decoder),
        output_postprocessor=None)
    flow = model(io_processors.patches_for_flow(images),
                 is_training=is_training)
    return flow * flow_scale_factor

  return forward


_INITS = {'zeros': jnp.zeros}


def flow_tile_origins(image_shape: Sequence[int], patch_size: Sequence[int],
                      min_overlap: int = 20):
  """Top-left corners of tiles covering the image ([code] flow colab).

  Tiles step by (patch - min_overlap); the last row/column is flush with the
  image border.
  """
  if min_overlap >= min(patch_size):
    raise ValueError(f'min_overlap ({min_overlap}) must be smaller than the '
                     f'tile size {tuple(patch_size)}.')
  if image_shape[0] < patch_size[0] or image_shape[1] < patch_size[1]:
    raise ValueError(f'Images of size {tuple(image_shape[:2])} are smaller '
                     f'than the network input {tuple(patch_size)}; pad or '
                     'resize them to at least that size.')
  def starts(size, patch):
    # DEVIATION: the colab pins only the last tile to the border, so a middle
    # tile can run off the image (e.g. 29 px, tiles of 12, step 7: 21 + 12 >
    # 29). Clamping every start to the border (and dropping repeats) fixes
    # that and gives the colab's tiles wherever the colab's were valid.
    last = size - patch
    return sorted({min(y, last) for y in range(0, size, patch - min_overlap)})
  return list(itertools.product(starts(image_shape[0], patch_size[0]),
                                starts(image_shape[1], patch_size[1])))


def tile_weights(patch_size: Sequence[int]):
  """[h, w] weights: distance to the nearest tile edge + 1 ([code] colab)."""
  wx, wy = np.meshgrid(np.arange(patch_size[1]), np.arange(patch_size[0]))
  wx = np.minimum(wx + 1, patch_size[1] - wx)
  wy = np.minimum(wy + 1, patch_size[0] - wy)
  return np.minimum(wx, wy).astype(np.float32)


def tiled_flow(apply_fn: Callable[[jax.Array], jax.Array], images,
               patch_size: Sequence[int] = TRAIN_SIZE, min_overlap: int = 20):
  """Flow for frames of any size >= patch_size, by overlapping tiles.

  Args:
    apply_fn: flow for a [B, 2, h, w, 3] tile -> [B, h, w, 2] (e.g. a jitted
      `functools.partial(transformed.apply, params, None)`).
    images: [B, 2, H, W, 3] frames in [-1, 1].
    patch_size: (h, w), the network's input size.
    min_overlap: minimum overlap of neighbouring tiles in pixels.

  Returns:
    [B, H, W, 2]: tile outputs averaged with weights that fall linearly to
    the tile edges (edge distance + 1), as in the release's colab.
  """
  height, width = images.shape[2:4]
  weights = tile_weights(patch_size)[None, :, :, None]
  flows = np.zeros(images.shape[:1] + (height, width, 2), np.float32)
  counts = np.zeros((1, height, width, 1), np.float32)
  for y, x in flow_tile_origins((height, width), patch_size, min_overlap):
    tile = images[:, :, y:y + patch_size[0], x:x + patch_size[1]]
    flow = np.asarray(apply_fn(tile))
    flows[:, y:y + patch_size[0], x:x + patch_size[1]] += flow * weights
    counts[:, y:y + patch_size[0], x:x + patch_size[1]] += weights
  return flows / counts


#  ------------------------------------------------------------
#  -----------------  Video autoencoding  ---------------------
#  ------------------------------------------------------------


def video_encoder_kwargs(*, num_self_attends_per_block: int,
                         z_index_dim: int, num_z_channels: int
                         ) -> dict[str, Any]:
  """The PerceiverEncoder kwargs that `video_autoencoder` fixes ([code]
  video colab); its `encoder_kwargs` add others or override these."""
  return dict(num_self_attends_per_block=num_self_attends_per_block,
              num_blocks=1, z_index_dim=z_index_dim,
              num_z_channels=num_z_channels, num_cross_attend_heads=1,
              num_self_attend_heads=8, cross_attend_widening_factor=1,
              self_attend_widening_factor=1, dropout_prob=0.0,
              z_pos_enc_init_scale=0.02, cross_attention_shape_for_attn='kv',
              name='encoder')


@dataclasses.dataclass(frozen=True)
class _VideoAutoencoder:
  """The video autoencoder's architecture (the kwargs of video_autoencoder)
  and the sizes derived from it."""
  num_frames: int
  image_size: int
  fourier_image_resolution: int
  audio_samples_per_frame: int
  samples_per_patch: int
  num_classes: int
  z_index_dim: int
  num_z_channels: int
  num_self_attends_per_block: int
  decoder_channels: int
  audio_num_bands: int
  image_num_bands: int
  spatial_downsample: int
  label_mask_prob: float
  encoder_kwargs: Mapping[str, Any]
  decoder_kwargs: Mapping[str, Any]

  @property
  def n_audio(self) -> int:  # N_a, audio samples per clip
    return self.num_frames * self.audio_samples_per_frame

  @property
  def n_audio_patches(self) -> int:
    return self.n_audio // self.samples_per_patch

  @property
  def image_grid(self) -> tuple[int, int, int]:  # (T, H, W)
    return (self.num_frames, self.image_size, self.image_size)

  def image_ff(self) -> dict[str, Any]:
    res = self.fourier_image_resolution
    return dict(num_bands=self.image_num_bands,
                max_resolution=(self.num_frames, res, res),
                sine_only=False, concat_pos=True)

  def audio_ff(self) -> dict[str, Any]:
    return dict(num_bands=self.audio_num_bands,
                max_resolution=(self.n_audio,), sine_only=False,
                concat_pos=True)

  def modules(self, subsampled_index_dims):
    """(preprocessor, encoder, decoder, postprocessor), created in the
    release's order (the parameter tree and seeded init depend on it)."""
    image_ff, audio_ff = self.image_ff(), self.audio_ff()
    prep = io_processors.MultimodalPreprocessor(
        min_padding_size=4,
        modalities={
            'audio': io_processors.AudioPreprocessor(
                position_encoding_type='fourier',
                fourier_position_encoding_kwargs=audio_ff,
                n_extra_pos_mlp=0, prep_type='patches',
                samples_per_patch=self.samples_per_patch),
            'image': io_processors.ImagePreprocessor(
                position_encoding_type='fourier',
                fourier_position_encoding_kwargs=image_ff,
                n_extra_pos_mlp=0, prep_type='patches',
                spatial_downsample=self.spatial_downsample,
                temporal_downsample=1),
            'label': io_processors.OneHotPreprocessor(),
        },
        mask_probs={'image': 0.0, 'audio': 0.0,
                    'label': self.label_mask_prob})
    post = io_processors.MultimodalPostprocessor(modalities={
        'audio': io_processors.AudioPostprocessor(
            samples_per_patch=self.samples_per_patch),
        'image': io_processors.ProjectionPostprocessor(num_outputs=3),
        'label': io_processors.ClassificationPostprocessor(
            num_classes=self.num_classes),
    })
    # encoder_kwargs may also override the release's fixed settings (e.g.
    # num_cross_attend_heads).
    enc = perceiver.PerceiverEncoder(**dict(
        video_encoder_kwargs(
            num_self_attends_per_block=self.num_self_attends_per_block,
            z_index_dim=self.z_index_dim,
            num_z_channels=self.num_z_channels),
        **self.encoder_kwargs))
    common = dict(concat_preprocessed_input=False,
                  num_z_channels=self.decoder_channels,
                  output_num_channels=self.num_z_channels,
                  use_query_residual=False)
    dec = perceiver.MultimodalDecoder(
        subsampled_index_dims=subsampled_index_dims,
        modalities={
            'audio': perceiver.BasicDecoder(
                output_index_dims=(self.n_audio_patches,),
                position_encoding_type='fourier',
                fourier_position_encoding_kwargs=audio_ff, **common),
            'image': perceiver.BasicVideoAutoencodingDecoder(
                output_shape=(1,) + self.image_grid,
                position_encoding_type='fourier',
                fourier_position_encoding_kwargs=image_ff, **common),
            'label': perceiver.ClassificationDecoder(
                num_classes=self.num_classes,
                concat_preprocessed_input=False,
                num_z_channels=self.decoder_channels,
                use_query_residual=False, position_encoding_type='trainable',
                trainable_position_encoding_kwargs=dict(
                    num_channels=self.decoder_channels, init_scale=0.02)),
        },
        num_outputs=None, output_num_channels=self.num_z_channels,
        # decoder_kwargs may override these (e.g. use_query_residual).
        **dict(dict(use_query_residual=False,
                    concat_preprocessed_input=False), **self.decoder_kwargs))
    return prep, enc, dec, post

  def clip_positions(self, indices, count: int):
    """Flat indices of one modality's `count` elements (inputs or outputs,
    time-major) -> positions on the latents' axis: element i sits at the
    centre of the fraction [i / count, (i + 1) / count) of the clip,
    latent j at j. A video patch, its pixels and the audio of the same
    moment land on the same latents."""
    return ((jnp.asarray(indices, jnp.float32) + 0.5)
            * (self.z_index_dim / count) - 0.5)

  def encoder_local_bias(self, width: float):
    """[N, M] locality prior of the encoder's cross-attention: latent j
    starts on the j-th of N equal time slices of the audio and video
    inputs (in the preprocessor's order: audio, image, label); the label
    input has no position (bias 0)."""
    latents = jnp.arange(self.z_index_dim, dtype=jnp.float32)
    size = self.image_size // self.spatial_downsample
    columns = []
    for count in (self.n_audio_patches, self.num_frames * size * size):
      columns.append(attention.local_logit_bias(
          latents, self.clip_positions(jnp.arange(count), count), width))
    columns.append(jnp.zeros((self.z_index_dim, 1), jnp.float32))
    return jnp.concatenate(columns, axis=1)

  def decoder_local_bias(self, width: float, points):
    """[O, N] (or [B, O, N] for per-example points) locality prior of the
    decoder's cross-attention: the query for an audio patch or a pixel
    starts on the latents of its time slice; the label query has no
    position. points = {'audio': patch indices, 'image': pixel indices},
    each [O] or [B, O], as subsampled."""
    latents = jnp.arange(self.z_index_dim, dtype=jnp.float32)
    counts = {'audio': self.n_audio_patches,
              'image': int(np.prod(self.image_grid))}
    rows = [attention.local_logit_bias(
        self.clip_positions(points[m], counts[m]), latents, width)
            for m in ('audio', 'image')]
    rows.append(jnp.zeros((1, self.z_index_dim), jnp.float32))
    lead = max((r.shape[:-2] for r in rows), key=len)
    return jnp.concatenate(
        [jnp.broadcast_to(r, lead + r.shape[-2:]) for r in rows], axis=-2)

  def check_inputs(self, images, audio) -> None:
    want_images = self.image_grid + (3,)
    if images.ndim != 5 or tuple(images.shape[1:]) != want_images:
      raise ValueError(f'video_autoencoder expects images [B, '
                       f'{", ".join(map(str, want_images))}]; got '
                       f'{tuple(images.shape)}.')
    if audio.ndim != 3 or tuple(audio.shape[1:]) != (self.n_audio, 1):
      raise ValueError(f'video_autoencoder expects mono audio [B, '
                       f'{self.n_audio}, 1]; got {tuple(audio.shape)}.')


def _with_label_mask(prep, label_mask, batch: int):
  """The preprocessor with the label input masked where label_mask ([B]
  bool) says, instead of by its own random draw."""
  if label_mask is None:
    return prep
  if tuple(np.shape(label_mask)) != (batch,):
    raise ValueError(f'label_mask must be [B] = [{batch}] bool; got shape '
                     f'{tuple(np.shape(label_mask))}.')
  return functools.partial(prep, masks={'label': label_mask[:, None]})


def _decode_subsampled(arch: _VideoAutoencoder, inputs, subsampling, batch,
                       is_training, label_mask, local_width):
  """The outputs at `subsampling`'s points (the release's training path)."""
  if subsampling is None or set(subsampling) - {'label'} != {'image', 'audio'}:
    raise ValueError("video_autoencoder needs subsampling={'image': "
                     "indices, 'audio': indices} or full_outputs=True.")
  points = {'image': subsampling['image'], 'audio': subsampling['audio']}
  sizes = {'audio': np.shape(points['audio'])[-1],
           'image': np.shape(points['image'])[-1], 'label': 1}
  prep, enc, dec, post = arch.modules(sizes)
  prep = _with_label_mask(prep, label_mask, batch)
  model = perceiver.Perceiver(input_preprocessor=prep, encoder=enc,
                              decoder=dec, output_postprocessor=post)
  biases = {}
  if local_width:  # DEVIATION, off by default (video_autoencoder)
    biases = dict(
        encoder_logit_bias=arch.encoder_local_bias(local_width),
        decoder_logit_bias=arch.decoder_local_bias(local_width, points))
  return model(inputs, is_training=is_training,
               subsampled_output_points=points, **biases)


def _decode_all(arch: _VideoAutoencoder, inputs, batch, is_training, chunks,
                label_mask, local_width):
  """Every output: the encoder runs once, the decoder maps over `chunks`
  slices of the queries with hk.map."""
  num_pixels = int(np.prod(arch.image_grid))
  n_patches = arch.n_audio_patches
  if num_pixels % chunks or n_patches % chunks:
    raise ValueError(f'chunks={chunks} must divide both {num_pixels} pixels '
                     f'and {n_patches} audio patches.')
  pix, aud = num_pixels // chunks, n_patches // chunks
  prep, enc, dec, post = arch.modules({'audio': aud, 'image': pix,
                                       'label': 1})
  prep = _with_label_mask(prep, label_mask, batch)
  # Encode once (the same modules Perceiver.__call__ would run).
  x, modality_sizes, without_pos = prep(inputs, is_training=is_training,
                                        network_input_is_1d=True)
  local = {}
  if local_width:  # DEVIATION, off by default (video_autoencoder)
    local['logit_bias'] = arch.encoder_local_bias(local_width)
  z = enc(x, enc.latents(x), is_training=is_training, **local)

  def decode_chunk(chunk_index):
    points = {'image': chunk_index * pix + jnp.arange(pix),
              'audio': chunk_index * aud + jnp.arange(aud)}
    query = dec.decoder_query(x, modality_sizes, without_pos,
                              subsampled_points=points)
    local = {}
    if local_width:
      local['logit_bias'] = arch.decoder_local_bias(local_width, points)
    out = dec(query, z, is_training=is_training, **local)
    return post(out, is_training=is_training,
                modality_sizes={'audio': aud, 'image': pix, 'label': 1})

  # Decoder queries never interact, so decoding chunk by chunk gives the
  # same values as decoding all queries at once.
  outs = hk.map(decode_chunk, jnp.arange(chunks))
  image = jnp.moveaxis(outs['image'], 0, 1).reshape(
      (batch,) + arch.image_grid + (3,))
  audio = jnp.moveaxis(outs['audio'], 0, 1).reshape(batch, arch.n_audio)
  return {'image': image, 'audio': audio, 'label': outs['label'][0]}


@checks.keyword_arguments
def video_autoencoder(*, num_frames: int = 16, image_size: int = 224,
                      fourier_image_resolution: int = 56,
                      audio_samples_per_frame: int = 1920,
                      samples_per_patch: int = 16, num_classes: int = 700,
                      z_index_dim: int = 784, num_z_channels: int = 512,
                      num_self_attends_per_block: int = 8,
                      decoder_channels: int = 1024, audio_num_bands: int = 192,
                      image_num_bands: int = 32, spatial_downsample: int = 4,
                      label_mask_prob: float = 1.0,
                      encoder_kwargs: Optional[Mapping[str, Any]] = None,
                      decoder_kwargs: Optional[Mapping[str, Any]] = None,
                      audio_gain: float = 1.0,
                      local_width: float = 0.0):
  """The Kinetics audio+video+label autoencoder ([code] video colab).

  Defaults are the released model. Returns
    forward(images [B, T, H, W, 3], audio [B, N_a, 1], subsampling, *,
            is_training, label=None, label_mask=None, full_outputs=False,
            chunks=128)
  -> {'image': ..., 'audio': ..., 'label': [B, K]}.

  `subsampling` = {'image': flat pixel indices, 'audio': flat audio-patch
  indices}, each [O] (one set for the batch, as in the release) or [B, O]
  (one set per example): decode only those outputs (training; [P] App. I
  decodes 512 pixels and the audio for 512 samples per example); the outputs
  are then image [B, O, 3] and audio [B, O * samples_per_patch]. With
  `full_outputs=True` every output is
  decoded in one call: the encoder runs once and the decoder maps over
  `chunks` slices of the queries with `hk.map`, so memory is bounded by one
  chunk (the colab loops 128 times in Python). The label input defaults to
  zeros, masked out with probability `label_mask_prob` (1.0 at evaluation,
  so the label is predicted; [P] uses 0.5 in training). `label_mask` ([B]
  bool) instead says which examples' label input is masked, so that a
  training loop can draw the masks with its data.

  `audio_gain` (DEVIATION; 1 is the release): the audio is multiplied by it
  before the preprocessor and the decoded audio divided by it, so inputs
  and outputs stay in the caller's units and no parameter changes. Quiet
  audio (RMS 0.017 on the CPU reproduction's films) is otherwise about 2%
  of the scale of the Fourier features it is concatenated with. At CPU
  scale the model decodes silence with or without it
  (benchmarks/repro/MULTIMODAL.md, the audio search).

  `local_width` (DEVIATION; 0 is the release): a Gaussian locality prior
  in time on both cross-attentions, of this width in latents: latent j
  starts on the j-th of N equal time slices of the clip (its video
  patches in time-major order and the audio of the same moment), and the
  query for a pixel or an audio patch on the latents of its slice
  (`attention.local_logit_bias`; the label takes no part). The language
  model's switch of the same kind (`PerceiverEncoder`'s
  cross_attend_local_width) takes its MLM off the unigram plateau at small
  scale. It adds no parameters.
  """
  if not audio_gain > 0:
    raise ValueError(f'video_autoencoder: audio_gain must be positive; got '
                     f'{audio_gain}.')
  arch = _VideoAutoencoder(
      num_frames=num_frames, image_size=image_size,
      fourier_image_resolution=fourier_image_resolution,
      audio_samples_per_frame=audio_samples_per_frame,
      samples_per_patch=samples_per_patch, num_classes=num_classes,
      z_index_dim=z_index_dim, num_z_channels=num_z_channels,
      num_self_attends_per_block=num_self_attends_per_block,
      decoder_channels=decoder_channels, audio_num_bands=audio_num_bands,
      image_num_bands=image_num_bands, spatial_downsample=spatial_downsample,
      label_mask_prob=label_mask_prob,
      encoder_kwargs=dict(encoder_kwargs or {}),
      decoder_kwargs=dict(decoder_kwargs or {}))
  if local_width < 0:
    raise ValueError(f'video_autoencoder: local_width must be >= 0 (0: off); '
                     f'got {local_width}.')

  def forward(images, audio, subsampling=None, *, is_training, label=None,
              label_mask=None, full_outputs=False, chunks=128):
    arch.check_inputs(images, audio)
    batch = images.shape[0]
    if label is None:
      label = jnp.zeros((batch, num_classes), images.dtype)
    if audio_gain != 1.0:  # DEVIATION, off by default (docstring)
      audio = audio * jnp.asarray(audio_gain, audio.dtype)
    inputs = {'image': images, 'audio': audio, 'label': label}
    if full_outputs:
      outs = _decode_all(arch, inputs, batch, is_training, chunks, label_mask,
                         local_width)
    else:
      outs = _decode_subsampled(arch, inputs, subsampling, batch, is_training,
                                label_mask, local_width)
    if audio_gain != 1.0:
      outs = dict(outs, audio=outs['audio'] / jnp.asarray(
          audio_gain, outs['audio'].dtype))
    return outs

  return forward


#  ------------------------------------------------------------
#  -----------  Spec -> forward, spec -> input shapes  --------
#  ------------------------------------------------------------
# A spec is a dict in the form of the release's JSON specs
# (perceiver/release_specs/full_<family>.json): 'builder' names one of the
# builders above and the other keys are its configuration.

Spec = Mapping[str, Any]
Forward = Callable[..., Any]  # forward(*inputs, is_training) for hk.transform
InputsFn = Callable[[Spec, int], Sequence[jax.ShapeDtypeStruct]]

VIDEO_KEYS = ('num_frames', 'image_size', 'fourier_image_resolution',
              'audio_samples_per_frame', 'samples_per_patch', 'num_classes',
              'z_index_dim', 'num_z_channels', 'num_self_attends_per_block',
              'decoder_channels', 'audio_num_bands', 'image_num_bands')
# Optional video_autoencoder kwargs a spec may carry.
VIDEO_OPTIONAL_KEYS = ('spatial_downsample', 'label_mask_prob', 'audio_gain',
                       'local_width')


def build_image_classifier(spec: Spec, **encoder_overrides) -> Forward:
  cfg = spec['config']
  return image_classifier(
      num_classes=spec['num_classes'],
      input_preprocessor=cfg['input_preprocessor'],
      encoder=dict(cfg['encoder'], **encoder_overrides),
      decoder=cfg.get('decoder'),
      projection_decoder=cfg.get('projection_decoder', False),
      input_channels=spec.get('input_channels', 3))


def build_mlm(spec: Spec, **encoder_overrides) -> Forward:
  return mlm(vocab_size=spec['vocab_size'], d_model=spec['d_model'],
             max_seq_len=spec['max_seq_len'],
             encoder=dict(spec['encoder'], **encoder_overrides),
             decoder=spec['decoder'])


def build_optical_flow(spec: Spec, **encoder_overrides) -> Forward:
  return optical_flow(
      input_preprocessor=spec['input_preprocessor'],
      encoder=dict(spec['encoder'], **encoder_overrides),
      decoder=spec['decoder'],
      flow_scale_factor=spec.get('flow_scale_factor', FLOW_SCALE_FACTOR))


def video_autoencoder_from_spec(spec: Spec, **encoder_overrides):
  """video_autoencoder of a spec (its encoder/decoder kwargs too)."""
  kwargs = {k: spec[k] for k in VIDEO_KEYS}
  kwargs.update({k: spec[k] for k in VIDEO_OPTIONAL_KEYS if k in spec})
  encoder = dict(spec.get('encoder_kwargs') or {}, **encoder_overrides)
  return video_autoencoder(encoder_kwargs=encoder or None,
                           decoder_kwargs=spec.get('decoder_kwargs'), **kwargs)


def build_video_subsampled(spec: Spec, **encoder_overrides) -> Forward:
  """The autoencoder decoding only the spec's subsampled outputs."""
  fwd = video_autoencoder_from_spec(spec, **encoder_overrides)
  subsampling = {'image': np.asarray(spec['subsampling_image']),
                 'audio': np.asarray(spec['subsampling_audio'])}

  def forward(images, audio, *, is_training):
    return fwd(images, audio, subsampling, is_training=is_training)

  return forward


def build_video_train_decode(spec: Spec, **encoder_overrides) -> Forward:
  """The autoencoder decoding [P]'s training outputs: 512 pixels, 512 audio
  patches and the label (App. I; whether "512 audio samples" are patches is
  the paper is silent). Which points are decoded does not change the FLOPs."""
  fwd = video_autoencoder_from_spec(spec, **encoder_overrides)
  n_audio_patches = (spec['num_frames'] * spec['audio_samples_per_frame']
                     // spec['samples_per_patch'])
  n_pixels = spec['num_frames'] * spec['image_size'] ** 2
  subsampling = {'image': np.arange(min(512, n_pixels)),
                 'audio': np.arange(min(512, n_audio_patches))}

  def forward(images, audio, *, is_training):
    return fwd(images, audio, subsampling, is_training=is_training)

  return forward


def build_video_full_decode(spec: Spec, **encoder_overrides) -> Forward:
  """The autoencoder decoding every output (evaluation), in one chunk.

  One chunk keeps the decode a single trip of `hk.map`, so XLA's cost
  analysis (which counts a loop body once) sees all of it. Only lowered,
  never run: memory is not a concern here.
  """
  fwd = video_autoencoder_from_spec(spec, **encoder_overrides)

  def forward(images, audio, *, is_training):
    return fwd(images, audio, is_training=is_training, full_outputs=True,
               chunks=1)

  return forward


def shape_struct(shape, dtype) -> jax.ShapeDtypeStruct:
  """A shape struct of int dimensions (no array is made)."""
  return jax.ShapeDtypeStruct(tuple(int(d) for d in shape), jnp.dtype(dtype))


def _inputs_from_spec(spec: Spec, names: Sequence[str], batch: int):
  """Shapes listed in the spec ('inputs': {name: [shape, dtype]}), rebatched."""
  return tuple(shape_struct((batch,) + tuple(spec['inputs'][n][0][1:]),
                            spec['inputs'][n][1]) for n in names)


def image_classifier_inputs(spec: Spec, batch: int):
  if 'inputs' in spec:
    return _inputs_from_spec(spec, ('images',), batch)
  return (shape_struct((batch, 224, 224, 3), jnp.float32),)


def mlm_inputs(spec: Spec, batch: int):
  t = spec['max_seq_len']
  return (shape_struct((batch, t), jnp.int32),
          shape_struct((batch, t), jnp.int32))


def optical_flow_inputs(spec: Spec, batch: int):
  h, w = spec['decoder']['output_image_shape']
  return (shape_struct((batch, 2, h, w, 3), jnp.float32),)


def video_inputs(spec: Spec, batch: int):
  n, size = spec['num_frames'], spec['image_size']
  return (shape_struct((batch, n, size, size, 3), jnp.float32),
          shape_struct((batch, n * spec['audio_samples_per_frame'], 1),
                       jnp.float32))


# spec['builder'] -> (build, example_inputs).
SPEC_BUILDERS: dict[str, tuple[Callable[[Spec], Forward], InputsFn]] = {
    'image_classifier': (build_image_classifier, image_classifier_inputs),
    'mlm': (build_mlm, mlm_inputs),
    'optical_flow': (build_optical_flow, optical_flow_inputs),
    'video_autoencoder': (build_video_subsampled, video_inputs),
}

# The names of each builder's forward inputs, in order.
INPUT_NAMES = {
    'image_classifier': ('images',),
    'mlm': ('inputs', 'input_mask'),
    'optical_flow': ('images',),
    'video_autoencoder': ('images', 'audio'),
}


def build(spec: Spec, **encoder_overrides) -> Forward:
  """forward(*inputs, is_training) of a spec; `encoder_overrides` (e.g.
  scan_layers=True) are added to the encoder kwargs."""
  return _builder(spec)[0](spec, **encoder_overrides)


def example_inputs(spec: Spec, batch: int = 1
                   ) -> tuple[jax.ShapeDtypeStruct, ...]:
  """The spec's forward inputs as shape structs with a leading batch."""
  return tuple(_builder(spec)[1](spec, batch))


def _builder(spec: Spec):
  name = spec.get('builder')
  if name not in SPEC_BUILDERS:
    raise ValueError(f'No builder for spec builder {name!r}; known: '
                     f'{sorted(SPEC_BUILDERS)}.')
  return SPEC_BUILDERS[name]
