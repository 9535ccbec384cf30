"""Every error the document library raises is a RagError, so one except clause catches them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import webui.rag
from webui.rag import RagError
from webui.rag.settings import InvalidRetrievalSettingsError, RetrievalSettings


def test_every_exception_class_in_the_rag_package_is_a_rag_error() -> None:
    found = []
    for module_info in pkgutil.walk_packages(webui.rag.__path__, "webui.rag."):
        module = importlib.import_module(module_info.name)
        found += [value for value in vars(module).values()
                  if inspect.isclass(value) and issubclass(value, BaseException)
                  and value.__module__ == module.__name__]
    names = {cls.__name__ for cls in found}
    assert {"DocumentParseError", "EmbeddingModelError", "RerankerError", "CollectionNotFoundError"} <= names
    assert [cls.__name__ for cls in found if not issubclass(cls, RagError)] == []


def test_a_bad_setting_is_caught_as_a_rag_error_and_reads_as_its_sentence() -> None:
    try:
        RetrievalSettings(chunk_tokens=64, overlap_tokens=40).validated()
    except RagError as error:  # the one clause callers write
        assert isinstance(error, InvalidRetrievalSettingsError) and isinstance(error, ValueError)
        assert str(error) == "Overlap must be between 0 and half the chunk size (32 tokens)."
    else:
        raise AssertionError("the bad setting was accepted")
