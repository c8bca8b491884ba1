"""A study folder reads the same on local disk and behind a URI (file:// stands in for s3:// here)."""

from study import storage


def test_local_and_uri_read_alike(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "b.json").write_bytes(b"{}")
    (tmp_path / "study" / "a.pkl").write_bytes(b"x")
    for root in (str(tmp_path), f"file://{tmp_path}"):
        folder = storage.join(root, "study")
        assert storage.names_in(folder) == ["a.pkl", "b.json"]
        assert storage.read_bytes(storage.join(folder, "b.json")) == b"{}"
        assert storage.exists(storage.join(folder, "a.pkl")) and not storage.exists(storage.join(folder, "c"))
        assert storage.names_in(storage.join(root, "missing")) == []
    assert storage.is_uri("s3://bucket/studies") and not storage.is_uri("/data/studies")
