"""The README's library example runs as written."""
import os
import re


def test_readme_example_runs(capsys):
  path = os.path.join(os.path.dirname(__file__), '..', 'README.md')
  with open(path) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  example = [b for b in blocks if 'checkpoint_io' in b]
  assert len(example) == 1
  exec(compile(example[0], 'README.md', 'exec'), {})  # pylint: disable=exec-used
  assert '(1, 64, 262)' in capsys.readouterr().out
