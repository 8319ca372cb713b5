"""The repository stands alone: nothing reads files from outside it.

A clone must pass its own tests, so no code, test, script or doc may point
at `../shared` (the facts the project was built from live outside the
repository; what the tests need was copied into tests/golden_data and
perceiver/release_specs).
"""
import os
import re
import subprocess
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTSIDE = re.compile(r"\.\./shared|'shared', *'golden'|PAPER\.md|DATA\.md")


def _tracked_files():
  out = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True,
                       text=True, check=True).stdout
  return [f for f in out.splitlines()
          if f.endswith(('.py', '.sh', '.md', 'Makefile', '.txt', '.cfg'))]


def _lines_matching(pattern: re.Pattern) -> list[str]:
  """'file:line: text' of every tracked line (but this file's) that matches."""
  files = _tracked_files()
  assert 'perceiver/train/trainer.py' in files  # the listing is not empty
  found = []
  for name in files:
    if name == 'tests/test_repository.py':
      continue
    with open(os.path.join(REPO, name), encoding='utf-8') as f:
      for number, line in enumerate(f, 1):
        if pattern.search(line):
          found.append(f'{name}:{number}: {line.strip()}')
  return found


def test_nothing_points_outside_the_repository():
  offenders = _lines_matching(OUTSIDE)
  assert not offenders, '\n'.join(offenders)


def test_golden_data_is_in_the_repository():
  from tests import golden  # pylint: disable=g-import-not-at-top
  for family in golden.TINY_FAMILIES:
    for suffix in ('.json', '.npz', '_init.npz'):
      assert os.path.exists(
          os.path.join(golden.GOLDEN_DIR, family + '_tiny' + suffix))
  for family in golden.FULL_FAMILIES:
    assert os.path.exists(os.path.join(golden.RELEASE_SPECS_DIR,
                                       f'full_{family}.json'))


TRACKER = re.compile(r'\bissues? #?\d+|\(issue\b|\bthe issue (asks|says)|'
                     r'\bas the issue\b', re.I)


def test_docs_cite_the_paper_or_the_release_not_a_tracker():
  """The issue tracker is not part of the repository: nothing may cite it."""
  offenders = _lines_matching(TRACKER)
  assert not offenders, '\n'.join(offenders)


def test_python_files_indent_with_two_spaces():
  """One indentation throughout (Google style, as the release)."""
  offenders = []
  for name in _tracked_files():
    if not name.endswith('.py'):
      continue
    with open(os.path.join(REPO, name), encoding='utf-8') as f:
      tokens = tokenize.generate_tokens(f.readline)
      first = next((t for t in tokens if t.type == tokenize.INDENT), None)
    if first is not None and len(first.string) != 2:
      offenders.append(f'{name}:{first.start[0]}: indented with '
                       f'{len(first.string)}')
  assert not offenders, '\n'.join(offenders)
