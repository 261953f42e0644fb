"""Readers: every format and compression on real files, counts checked against the files."""

from __future__ import annotations

import bz2
import gzip
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from cama.corpus.readers import Quarantined, Record, detect_format, iter_records
from cama.errors import SourceError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"


def records(items) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def quarantined(items) -> list[Quarantined]:
    return [i for i in items if isinstance(i, Quarantined)]


def demo_text(path: Path) -> str:
    """A demo file decompressed by other means than the readers use."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    elif path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    elif path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw.decode("utf-8-sig").replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.jsonl.gz", "jsonl"),
        ("x.json.zst", "json"),
        ("x.txt.bz2", "txt"),
        ("wiki.test.raw.gz", "txt"),
        ("x.parquet", "parquet"),
        ("dump.xml.bz2", "wiki_xml"),
    ],
)
def test_auto_format_by_extension_under_compression(name, fmt):
    assert detect_format(Path(name)) == fmt


def test_auto_format_of_a_folder_is_code_tree(tmp_path):
    assert detect_format(tmp_path) == "code_tree"


def test_unknown_extension_names_the_file():
    with pytest.raises(SourceError, match=r"data\.bin"):
        detect_format(Path("data.bin"))


def test_jsonl_gz_gives_every_line_in_order(spec_of):
    path = DEMO / "en" / "c4_demo.jsonl.gz"
    expected = [json.loads(line)["text"] for line in demo_text(path).splitlines() if line.strip()]
    items = list(iter_records(path, spec_of(lang="en")))
    assert [r.text for r in records(items)] == expected
    assert len(expected) == 200
    assert [r.line for r in items[:3]] == [1, 2, 3]
    assert items[0].file == "c4_demo.jsonl.gz"


def test_jsonl_list_of_fields_joined_with_newlines_and_meta(spec_of):
    path = DEMO / "code" / "humaneval_python.jsonl.gz"
    spec = spec_of(lang="code", text=["prompt", "canonical_solution", "test"], meta=["task_id"])
    items = records(iter_records(path, spec))
    first = json.loads(demo_text(path).splitlines()[0])
    assert len(items) == 100
    assert items[0].text == "\n".join([first["prompt"], first["canonical_solution"], first["test"]])
    assert items[0].meta == {"task_id": "Python/0"}


@pytest.mark.parametrize(
    ("file", "count"), [("cmrc2018_dev.json.gz", 848), ("DRCD_dev.json.gz", 1000)]
)
def test_squad_json_one_record_per_paragraph(spec_of, file, count):
    path = DEMO / "zh" / file
    data = json.loads(demo_text(path))
    contexts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    spec = spec_of(lang="zh", records="data.*.paragraphs.*", text="context", meta=["id"])
    items = list(iter_records(path, spec))
    assert len(contexts) == count
    assert [r.text for r in items] == contexts
    assert items[-1].line == count
    assert items[0].meta == {"id": data["data"][0]["paragraphs"][0]["id"]}


def test_json_top_list_with_a_list_field(spec_of):
    path = DEMO / "zh" / "poet.tang.0.json.gz"
    poems = json.loads(demo_text(path))
    items = records(
        iter_records(path, spec_of(lang="zh", text=["title", "paragraphs"], meta=["author"]))
    )
    assert len(items) == len(poems) == 1000
    assert items[0].text == poems[0]["title"] + "\n" + "\n".join(poems[0]["paragraphs"])
    assert items[0].meta == {"author": poems[0]["author"]}


def test_json_top_object_of_records(tmp_path, spec_of):
    path = tmp_path / "by_id.json"
    path.write_text(json.dumps({"a": {"text": "first"}, "b": {"text": "second"}}))
    assert [r.text for r in iter_records(path, spec_of(lang="en"))] == ["first", "second"]


def test_json_records_path_that_does_not_fit_names_the_key(tmp_path, spec_of):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": []}, {"title": "no paragraphs"}]}))
    with pytest.raises(SourceError, match=r"squad\.json.*'paragraphs'"):
        list(iter_records(path, spec_of(lang="en", records="data.*.paragraphs.*")))


def test_txt_regex_split_on_wikitext_gz(spec_of):
    path = DEMO / "en" / "wiki.test.raw.gz"
    spec = spec_of(lang="en", format="txt", split="regex", split_regex="^ = [^=].* = $")
    items = records(iter_records(path, spec))
    headings = [line for line in demo_text(path).split("\n") if re.match(r"^ = [^=].* = $", line)]
    assert len(items) == len(headings) == 62
    assert items[0].text.startswith(" = Robert Boulter = \n")
    assert items[1].text.startswith(" = Du Fu = ")
    assert "\r" not in items[0].text  # CRLF files give clean lines


@pytest.mark.parametrize("file", ["gutenberg_972.txt.bz2", "gutenberg_3261.txt.zst"])
def test_txt_paragraphs_from_bz2_and_zst(spec_of, file):
    path = DEMO / "en" / file
    expected = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", demo_text(path)) if p.strip()]
    items = records(iter_records(path, spec_of(lang="en", format="txt", split="paragraph")))
    assert len(items) == len(expected) > 1000
    assert [r.text for r in items] == expected


def test_txt_blocks_gather_whole_paragraphs_up_to_a_size(spec_of):
    path = DEMO / "en" / "gutenberg_972.txt.bz2"
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", demo_text(path)) if p.strip()]
    blocks = records(iter_records(path, spec_of(lang="en", format="txt", split="block", block_bytes=2000)))
    assert 100 < len(blocks) < len(paragraphs) / 5
    # every block but the last reaches the size, and only the paragraph that crossed it goes past
    assert all(len(b.text.encode()) >= 2000 for b in blocks[:-1])
    # nothing lost or reordered: the blocks are the paragraphs, regrouped
    rejoined = [p.strip("\n") for b in blocks for p in re.split(r"\n[ \t]*\n", b.text) if p.strip()]
    assert rejoined == paragraphs


def test_txt_line_and_file_splits(tmp_path, spec_of):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\n\r\ntwo\nthree\n")
    lines = list(iter_records(path, spec_of(lang="en", split="line")))
    assert [(r.line, r.text) for r in lines] == [(1, "one"), (3, "two"), (4, "three")]
    whole = list(iter_records(path, spec_of(lang="en", split="file")))
    assert [r.text for r in whole] == ["one\n\ntwo\nthree"]


def test_parquet_streams_all_rows_across_batches(tmp_path, spec_of):
    path = tmp_path / "rows.parquet"
    n = 2500  # more than one 1024-row batch
    pq.write_table(
        pa.table({"body": [f"row {i}" for i in range(n)], "url": [f"u{i}" for i in range(n)]}),
        path,
        row_group_size=700,
    )
    items = list(iter_records(path, spec_of(lang="en", text="body", meta=["url"])))
    assert len(items) == n
    assert (items[-1].line, items[-1].text, items[-1].meta) == (
        n,
        f"row {n - 1}",
        {"url": f"u{n - 1}"},
    )


def test_parquet_without_the_text_column_names_it(tmp_path, spec_of):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(SourceError, match=r"rows\.parquet.*'text'"):
        list(iter_records(path, spec_of(lang="en")))


WIKI_DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <namespaces><namespace key="0" case="first-letter" /><namespace key="1" case="first-letter">Talk</namespace></namespaces>
  </siteinfo>
  <page>
    <title>Du Fu</title>
    <ns>0</ns>
    <id>8374</id>
    <revision>
      <id>1</id>
      <text bytes="120" xml:space="preserve">'''Du Fu''' ({{zh|c=杜甫}}; 712 – 770) was a [[China|Chinese]] poet of the [[Tang dynasty]].&lt;ref&gt;Owen&lt;/ref&gt;

== Life ==
He was born near [[Luoyang]].</text>
    </revision>
  </page>
  <page>
    <title>Tu Fu</title>
    <ns>0</ns>
    <id>8375</id>
    <redirect title="Du Fu" />
    <revision><id>2</id><text xml:space="preserve">#REDIRECT [[Du Fu]]</text></revision>
  </page>
  <page>
    <title>Talk:Du Fu</title>
    <ns>1</ns>
    <id>8376</id>
    <revision><id>3</id><text xml:space="preserve">Discussion of the article.</text></revision>
  </page>
  <page>
    <title>Li Bai</title>
    <ns>0</ns>
    <id>8377</id>
    <revision><id>4</id><text xml:space="preserve">'''Li Bai''' was a poet. {{Infobox|born=701}}</text></revision>
  </page>
</mediawiki>
"""


@pytest.mark.parametrize("suffix", [".xml", ".xml.bz2"])
def test_wiki_xml_articles_only_markup_stripped(tmp_path, spec_of, suffix):
    path = tmp_path / f"enwiki-pages-articles{suffix}"
    data = WIKI_DUMP.encode()
    path.write_bytes(bz2.compress(data) if suffix.endswith(".bz2") else data)
    items = list(iter_records(path, spec_of(lang="en")))
    assert [r.meta for r in items] == [
        {"title": "Du Fu", "page_id": "8374"},
        {"title": "Li Bai", "page_id": "8377"},
    ]
    assert [r.line for r in items] == [1, 4]  # page ordinals in the dump
    du_fu = items[0].text
    assert du_fu.startswith("Du Fu (; 712 – 770) was a Chinese poet of the Tang dynasty.")
    assert "[[" not in du_fu and "'''" not in du_fu and "{{" not in du_fu
    assert "He was born near Luoyang." in du_fu
    assert items[1].text.strip() == "Li Bai was a poet."


def test_wiki_xml_cut_short_keeps_pages_before(tmp_path, spec_of):
    path = tmp_path / "cut.xml"
    path.write_text(WIKI_DUMP[: WIKI_DUMP.index("<title>Talk:Du Fu")])
    items = list(iter_records(path, spec_of(lang="en")))
    assert [r.meta["title"] for r in records(items)] == ["Du Fu"]
    assert [(q.reason, q.line) for q in quarantined(items)] == [("malformed_xml", 3)]


def test_code_tree_of_the_stdlib_json_package(spec_of):
    tree = Path(json.__file__).parent
    expected = sorted(
        p.relative_to(tree).as_posix() for p in tree.rglob("*.py") if "__pycache__" not in p.parts
    )
    items = list(
        iter_records(tree, spec_of(lang="code", uri=str(tree), include=["*.py"]), name="json")
    )
    assert sorted(r.meta["path"].removeprefix("json/") for r in items) == expected
    assert {r.meta["language"] for r in items} == {"python"}
    decoder = next(r for r in items if r.meta["path"] == "json/decoder.py")
    assert decoder.text == (tree / "decoder.py").read_text()
    assert [r.line for r in items] == list(range(1, len(items) + 1))


def test_code_tree_quarantines_binary_and_undecodable_files(tmp_path, spec_of):
    tree = tmp_path / "repo"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "ok.py").write_text("def f():\n\treturn 1\n")
    (tree / "pkg" / "blob.so").write_bytes(b"\x7fELF\x00\x00\x01" + bytes(range(256)))
    (tree / "pkg" / "latin1.c").write_bytes("/* caf\xe9 */\n".encode("latin-1"))
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    items = list(iter_records(tree, spec_of(lang="code"), name="repo"))
    assert [(r.meta["path"], r.meta["language"]) for r in records(items)] == [
        ("repo/pkg/ok.py", "python")
    ]
    assert sorted((q.file, q.reason) for q in quarantined(items)) == [
        ("repo/pkg/blob.so", "binary"),
        ("repo/pkg/latin1.c", "invalid_utf8"),
    ]


def test_code_tree_single_file_from_a_manifest(tmp_path, spec_of):
    path = tmp_path / "main.rs"
    path.write_text("fn main() {}\n")
    (item,) = iter_records(path, spec_of(lang="code", format="code_tree"), name="src/main.rs")
    assert (item.text, item.meta) == ("fn main() {}\n", {"path": "src/main.rs", "language": "rust"})


def test_zst_of_several_frames_is_read_across_frames(tmp_path, spec_of):
    path = tmp_path / "frames.jsonl.zst"
    cctx = zstandard.ZstdCompressor()
    path.write_bytes(
        b"".join(cctx.compress(json.dumps({"text": f"doc {i}"}).encode() + b"\n") for i in range(5))
    )
    assert [r.text for r in iter_records(path, spec_of(lang="en"))] == [
        f"doc {i}" for i in range(5)
    ]


def test_missing_file_is_a_source_error_naming_it(tmp_path, spec_of):
    with pytest.raises(SourceError, match=r"gone\.jsonl"):
        list(iter_records(tmp_path / "gone.jsonl", spec_of(lang="en")))
