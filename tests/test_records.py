"""The output-file helpers every long job shares (llama.records)."""

import pytest

from llama.records import atomic_path, json_line, read_jsonl


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_torn_last_line_is_ignored_and_repaired(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    path.write_text(json_line({"a": 1}) + "not json\n" + '{"a": 2')
    assert read_jsonl(path) == [(1, {"a": 1}), (2, None)]
    assert "incomplete last line" in capsys.readouterr().err
    read_jsonl(path, repair=True)
    assert path.read_text() == json_line({"a": 1}) + "not json\n"
