"""What a memory holds, read without embedding anything: for the evaluation's leakage check.

An evaluation must not ask a model the questions whose answers went into its training data.
The data came from a memory; this reads that memory's item ids, the dataset question ids its
items carry (``question_id``, set by the BLEnD importer since it was added) and its texts —
knowledge items and accepted samples. No embedder is loaded: only stored fields are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from caredio.config.urls import public_url
from caredio.errors import UserInputError
from caredio.memory.chroma import make_client
from caredio.memory.store import KNOWLEDGE, SAMPLES

PAGE = 5000
CHROMA_FILE = "chroma.sqlite3"


@dataclass
class MemoryContents:
    label: str
    ids: set[str] = field(default_factory=set)  # Chroma ids and items' question_id values
    texts: list[str] = field(default_factory=list)
    items: int = 0


def _page_through(collection: object, contents: MemoryContents, question_ids: bool) -> None:
    total = int(collection.count())  # type: ignore[attr-defined]
    for offset in range(0, total, PAGE):
        chunk = collection.get(  # type: ignore[attr-defined]
            include=["documents", "metadatas"], limit=PAGE, offset=offset)
        contents.ids.update(str(i) for i in chunk["ids"])
        contents.texts += [str(d) for d in chunk["documents"] or [] if d]
        if question_ids:
            for meta in chunk["metadatas"] or []:
                if meta and meta.get("question_id"):
                    contents.ids.add(str(meta["question_id"]))
        contents.items += len(chunk["ids"])


def read_contents(path: str | Path | None = None, url: str | None = None) -> MemoryContents:
    """Ids and texts of a memory directory (or Chroma server); refuses what is not a memory.

    A directory is checked before Chroma opens it: opening creates files, and a mistyped
    path must not leave an empty store behind.
    """
    if url:
        label = public_url(url)  # the label goes into eval.json: never a URL's credentials
        client = make_client(url=url)
    else:
        directory = Path(str(path))
        label = str(directory)
        if not directory.is_dir():
            raise UserInputError(f"{directory}: no such memory directory")
        if not (directory / CHROMA_FILE).is_file():
            raise UserInputError(f"{directory}: not a CAReDiO memory (no {CHROMA_FILE})")
        client = make_client(path=directory)
    names = {getattr(c, "name", c) for c in client.list_collections()}
    if KNOWLEDGE not in names:
        raise UserInputError(f"{label}: not a CAReDiO memory (no '{KNOWLEDGE}' collection)")
    contents = MemoryContents(label)
    _page_through(client.get_collection(KNOWLEDGE), contents, question_ids=True)
    if SAMPLES in names:
        _page_through(client.get_collection(SAMPLES), contents, question_ids=False)
    return contents


def item_texts(memory: dict[str, object] | None, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Item id -> (culture, text), to show evidence, which stores ids only.

    Read from the memory a run used (its config's ``memory`` table: directory or Chroma server,
    without its lock: nothing is written), and for ids it does not hold — an ephemeral memory
    is gone with its run — from the packaged starter pack, whose ids are stable. An id found
    nowhere is left out; the caller shows the bare id.
    """
    from caredio.memory.ingest import starter_pack

    wanted = list(dict.fromkeys(i for i in ids if i))
    found: dict[str, tuple[str, str]] = {}
    config = memory or {}
    path, url = config.get("path"), config.get("url")
    readable = url or (path and path != ":memory:" and (Path(str(path)) / CHROMA_FILE).is_file())
    if wanted and readable:
        client = make_client(url=str(url)) if url else make_client(path=Path(str(path)))
        names = {getattr(c, "name", c) for c in client.list_collections()}
        if KNOWLEDGE in names:
            got = client.get_collection(KNOWLEDGE).get(ids=wanted, include=["documents", "metadatas"])
            for item_id, text, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                found[str(item_id)] = (str((meta or {}).get("culture", "")), str(text))
    missing = set(wanted) - set(found)
    if missing:
        for item in starter_pack():
            if item.id in missing:
                found[item.id] = (item.culture, item.text)
    return found
