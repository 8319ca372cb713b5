"""The battle-set generator: targets and outcomes of hand-built scenes,
agreement with a plain-loop reference, determinism and exact resume."""
import math

import numpy as np
import pytest

from perceiver.tasks.entities import battle

TYPE = {t.name: i for i, t in enumerate(battle.UNIT_TYPES)}
S, E, N = battle.SELF, battle.ENEMY, battle.NEUTRAL


def scene(*units):
  """units: (owner, type name, x, y, health[, cooldown])."""
  return battle.Scene(
      owner=np.array([u[0] for u in units]),
      unit_type=np.array([TYPE[u[1]] for u in units]),
      position=np.array([[u[2], u[3]] for u in units], np.float64),
      health=np.array([u[4] for u in units], np.float64),
      cooldown=np.array([u[5] if len(u) > 5 else 0 for u in units]))


# --- Pointer targets of hand-built scenes -----------------------------------


def test_lowest_health_enemy_in_range_wins_over_nearer_ones():
  target, rule = battle.pointer_targets(scene(
      (S, 'marine', 10, 10, 45),  # range 5
      (E, 'roach', 13, 10, 30),  # in range, nearer
      (E, 'roach', 14, 10, 10),  # in range, weakest -> the target
      (E, 'roach', 30, 30, 1),  # weakest of all but out of range
      (N, 'worker', 11, 10, 0.5),  # neutrals are never targets
      (S, 'zergling', 10.5, 10, 0.5),  # nor are friends
  ))
  assert target[0] == 2 and rule[0] == battle.RULE_IN_RANGE


def test_nearest_enemy_when_none_is_in_range():
  target, rule = battle.pointer_targets(scene(
      (S, 'zergling', 0, 0, 35),  # melee: range 1
      (E, 'roach', 3, 0, 100),  # nearest -> the target
      (E, 'roach', 0, 6, 1),  # weaker but farther
      (N, 'worker', 0.5, 0, 1),  # a nearer neutral does not count
  ))
  assert target[0] == 1 and rule[0] == battle.RULE_NEAREST


def test_enemies_target_self_units_by_the_same_rule():
  target, rule = battle.pointer_targets(scene(
      (S, 'thor', 0, 0, 400),
      (S, 'marine', 0, 7, 5),
      (E, 'tank', 0, 3, 175),  # range 9: both in range, the marine weaker
      (E, 'zealot', 0, 20, 150),  # melee, out of range: nearest is the marine
  ))
  assert list(target[2:]) == [1, 1]
  assert list(rule[2:]) == [battle.RULE_IN_RANGE, battle.RULE_NEAREST]
  assert list(target[:2]) == [2, 2]  # thor: tank in range; marine: nearest


def test_range_is_inclusive_and_ties_go_to_the_lower_slot():
  target, rule = battle.pointer_targets(scene(
      (S, 'marine', 0, 0, 45),  # range exactly 5.0
      (E, 'roach', 5, 0, 20),  # at distance exactly 5: in range
      (E, 'roach', 0, 4, 20),  # same health, nearer: the lower slot wins
  ))
  assert target[0] == 1 and rule[0] == battle.RULE_IN_RANGE


def test_neutrals_and_lone_armies_have_no_target():
  target, rule = battle.pointer_targets(scene(
      (S, 'marine', 0, 0, 45), (S, 'marine', 1, 0, 45),
      (N, 'worker', 2, 0, 40)))
  assert list(target) == [-1, -1, -1]
  assert list(rule) == [battle.RULE_NONE] * 3


def _reference_targets(sc):
  """A plain-loop transcription of the rule, independent of battle._pick."""
  n = len(sc.owner)
  out = []
  for i in range(n):
    if sc.owner[i] == N:
      out.append(-1)
      continue
    foes = [j for j in range(n) if sc.owner[j] not in (sc.owner[i], N)]
    if not foes:
      out.append(-1)
      continue
    reach = battle.UNIT_TYPES[sc.unit_type[i]].attack_range
    dist = {j: math.dist(sc.position[i], sc.position[j]) for j in foes}
    in_range = [j for j in foes if dist[j] <= reach]
    if in_range:
      out.append(min(in_range, key=lambda j: (sc.health[j], j)))
    else:
      out.append(min(foes, key=lambda j: (dist[j], j)))
  return out


@pytest.mark.parametrize('index', range(6))
def test_generated_scene_targets_match_a_plain_loop_reference(index):
  sc = battle.sample_scene(np.random.default_rng([7, 0, index]), 16, 60)
  target, _ = battle.pointer_targets(sc)
  assert list(target) == _reference_targets(sc)


# --- The combat simulation ---------------------------------------------------


def test_simulation_moves_reloads_and_trades_damage_simultaneously():
  # A tank (range 9, 30 damage, fires every 4 ticks) against a zealot
  # (melee, 16 damage every 2 ticks, speed 1) starting 8.5 away:
  # tank fires at ticks 1, 5, 9, 13 (100 -> 70 -> 40 -> 10 -> dead);
  # the zealot walks 8.5 -> 1.0 (stopping at its range on tick 8) and
  # fires at ticks 9, 11 and 13, simultaneously with the killing shot.
  outcome = battle.simulate(scene((S, 'tank', 0, 0, 175),
                                  (E, 'zealot', 8.5, 0, 100)))
  assert outcome.ticks == 13
  assert outcome.enemy_health == 0
  assert outcome.self_health == 175 - 3 * 16
  assert battle.self_wins(outcome) == 1


def test_ranged_unit_kites_an_approaching_worker():
  # Marine (range 5, speed 0.8, 6 damage every tick) vs worker (12 health,
  # speed 1) 8 apart: both close in (gap 8 -> 6.2 -> 4.4), then two shots.
  outcome = battle.simulate(scene((S, 'marine', 0, 0, 45),
                                  (E, 'worker', 8, 0, 12)))
  assert outcome == battle.Outcome(self_health=45, enemy_health=0, ticks=4)


def test_the_stronger_army_wins_whichever_side_it_is():
  strong = [('thor', 0, 0, 400), ('thor', 1, 0, 400)]
  weak = [('zergling', 3, 0, 35), ('zergling', 3, 1, 35)]
  mine = scene(*[(S,) + u for u in strong], *[(E,) + u for u in weak])
  theirs = scene(*[(E,) + u for u in strong], *[(S,) + u for u in weak])
  assert battle.self_wins(battle.simulate(mine)) == 1
  assert battle.self_wins(battle.simulate(theirs)) == 0


def test_neutrals_take_no_part_in_the_battle():
  base = [(S, 'marine', 0, 0, 45), (E, 'marine', 3, 0, 30)]
  with_neutrals = base + [(N, 'ultralisk', 1, 0, 500), (N, 'tank', 2, 0, 175)]
  assert battle.simulate(scene(*base)) == battle.simulate(
      scene(*with_neutrals))


# --- Features, determinism, resume ---------------------------------------------


def test_features_encode_the_scene_and_mask_the_padding():
  sc = scene((S, 'marine', 8, 24, 45, 0), (N, 'archon', 16, 0, 50, 1))
  x, mask = battle.features(sc, 4)
  assert x.shape == (4, battle.NUM_FEATURES) and x.dtype == np.float32
  assert list(mask) == [True, True, False, False]
  assert not x[2:].any()
  assert x[0, battle.FEATURE_OWNER].tolist() == [1, 0, 0]
  assert x[1, battle.FEATURE_OWNER].tolist() == [0, 0, 1]
  assert np.flatnonzero(x[1, battle.FEATURE_TYPE]).tolist() == [TYPE['archon']]
  np.testing.assert_allclose(x[0, [battle.FEATURE_X, battle.FEATURE_Y]],
                             [-0.5, 0.5])
  assert x[1, battle.FEATURE_HEALTH] == pytest.approx(0.5)
  assert x[1, battle.FEATURE_COOLDOWN] == pytest.approx(
      1 / battle.COOLDOWN_SCALE)
  with pytest.raises(ValueError, match='max_entities'):
    battle.features(sc, 1)


def test_examples_are_a_pure_function_of_seed_stream_and_index():
  kw = dict(min_entities=16, max_entities=40)
  a = battle.example(3, 0, 11, **kw)
  b = battle.example(3, 0, 11, **kw)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  for other in (battle.example(4, 0, 11, **kw), battle.example(3, 1, 11, **kw),
                battle.example(3, 0, 12, **kw)):
    assert not np.array_equal(a['entities'], other['entities'])
  n = int(a['entity_mask'].sum())
  assert 16 <= n <= 40 and a['entity_mask'][:n].all()
  assert (a['target'][n:] == -1).all()
  # Targets point at real enemies only.
  owner = a['entities'][:, battle.FEATURE_OWNER].argmax(-1)
  has = a['target'] >= 0
  assert has.any()
  assert a['entity_mask'][a['target'][has]].all()
  assert (owner[a['target'][has]] != owner[has]).all()
  assert (owner[a['target'][has]] != battle.NEUTRAL).all()


def test_generated_labels_are_varied():
  kw = dict(min_entities=16, max_entities=64)
  data = battle.batch(0, 0, range(40), **kw)
  assert 0.2 < data['win'].mean() < 0.8  # both outcomes occur
  rules = data['rule'][data['entity_mask']]
  for rule in (battle.RULE_IN_RANGE, battle.RULE_NEAREST):
    assert (rules == rule).mean() > 0.15  # both targeting cases occur
  with pytest.raises(ValueError, match='min_entities'):
    battle.example(0, 0, 0, min_entities=8, max_entities=4)
