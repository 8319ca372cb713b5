"""The entity model: an entity encoder, a pointer head and a win head.

Glossary of shapes:
  B: batch size.  M: entity slots.  F: features per entity.
  K: pointer key channels.

The heads stand in for AlphaStar's (Vinyals et al. 2019, Methods): its
selection heads point at entities with a query against keys computed from
`entity_embeddings` by a kernel-1 Conv1D of 32 channels; its value
baselines read the global summary. Here:
  * `PointerHead`: for every entity i, logits over all entity slots j,
    q_i . k_j / sqrt(K) with k = Conv1D_K(entity_embeddings) and
    q = Linear_K(ReLU(Linear_256(entity_embeddings))); masked slots are never
    pointed at. DEVIATION: AlphaStar's query comes from its autoregressive
    action embedding (one query per step); this task asks every entity for
    its own target, so the query is the entity's own embedding.
  * `WinHead`: one logit that self wins, from `embedded_entity` (ReLU MLP).
"""
from typing import Any, Mapping

import haiku as hk
import jax
import jax.numpy as jnp

from perceiver import perceiver
from perceiver.tasks.entities import encoders

POINTER_KEY_CHANNELS = 32  # K: AlphaStar's selection keys
# Logit of a masked slot: finite, so that a row whose every key is masked
# gives a uniform (ignored) distribution rather than NaN.
MASKED_LOGIT = -1e9


class PointerHead(hk.Module):
  """Per-entity pointer logits over the entity slots (module doc)."""

  def __init__(self, key_channels: int = POINTER_KEY_CHANNELS,
               name: str = 'pointer_head'):
    super().__init__(name=name)
    self._key_channels = key_channels

  def __call__(self, entity_embeddings: jax.Array,  # [B, M, 256]
               entity_mask: jax.Array,  # [B, M]
               ) -> jax.Array:  # [B, M (pointer of), M (pointed at)]
    keys = perceiver.conv_1d(self._key_channels, name='keys')(
        entity_embeddings)  # [B, M, K]
    hidden = jax.nn.relu(hk.Linear(encoders.ENTITY_CHANNELS,
                                   name='query_hidden')(entity_embeddings))
    queries = hk.Linear(self._key_channels, name='queries')(hidden)
    logits = jnp.einsum('bik,bjk->bij', queries, keys,
                        preferred_element_type=jnp.float32)
    logits = logits / jnp.sqrt(float(self._key_channels))
    return jnp.where(entity_mask[:, None, :], logits, MASKED_LOGIT)


class WinHead(hk.Module):
  """The logit that self wins the battle, from embedded_entity [B, 256]."""

  def __call__(self, embedded_entity: jax.Array) -> jax.Array:  # [B]
    hidden = jax.nn.relu(hk.Linear(encoders.ENTITY_CHANNELS,
                                   name='hidden')(embedded_entity))
    return hk.Linear(1, name='logit')(hidden)[:, 0].astype(jnp.float32)


def make_forward(encoder: str, encoder_kwargs: Mapping[str, Any]):
  """forward(batch, *, is_training) -> {'pointer_logits' [B, M, M],
  'win_logits' [B], and the encoder's 'entity_embeddings' [B, M, 256] and
  'embedded_entity' [B, 256]} for `encoder` in encoders.ENCODERS."""
  if encoder not in encoders.ENCODERS:
    raise ValueError(f'Unknown entity encoder {encoder!r}; use one of '
                     f'{sorted(encoders.ENCODERS)}.')
  encoder_cls = encoders.ENCODERS[encoder]
  encoder_kwargs = dict(encoder_kwargs)

  def forward(batch: Mapping[str, jax.Array], *, is_training: bool):
    entities, mask = batch['entities'], batch['entity_mask'].astype(bool)
    encoding = encoder_cls(**encoder_kwargs)(entities, mask,
                                             is_training=is_training)
    return {'pointer_logits': PointerHead()(encoding.entity_embeddings, mask),
            'win_logits': WinHead()(encoding.embedded_entity),
            **encoding._asdict()}

  return forward
