"""LangChain's ChatOpenAI, ChatOllama and OllamaEmbeddings against the running app, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import RunningApp

pytestmark = pytest.mark.slow


def test_chat_openai_invoke_and_stream(local_app: RunningApp, smollm_path: Path) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(base_url=f"{local_app.url}/v1", api_key="unused", model=smollm_path.name,
                                      max_tokens=12, temperature=0, max_retries=0)
    answer = llm.invoke("Say hello.")
    assert answer.content.strip()
    assert answer.usage_metadata and answer.usage_metadata["output_tokens"] > 0
    pieces = [chunk.content for chunk in llm.stream("Count from one to five.")]
    assert len([p for p in pieces if p]) >= 2 and "".join(pieces).strip()


def test_chat_ollama_invoke_and_stream(local_app: RunningApp, smollm_path: Path) -> None:
    langchain_ollama = pytest.importorskip("langchain_ollama")
    llm = langchain_ollama.ChatOllama(base_url=local_app.url, model=smollm_path.name, num_predict=12, temperature=0)
    answer = llm.invoke("Say hello.")
    assert answer.content.strip()
    pieces = [chunk.content for chunk in llm.stream("Count from one to five.")]
    assert len([p for p in pieces if p]) >= 2


def test_ollama_embeddings_match_for_the_same_text(local_app: RunningApp) -> None:
    langchain_ollama = pytest.importorskip("langchain_ollama")
    embeddings = langchain_ollama.OllamaEmbeddings(base_url=local_app.url, model="all-MiniLM-L6-v2")
    documents = embeddings.embed_documents(["the cat sat on the mat", "stock markets fell today"])
    query = embeddings.embed_query("the cat sat on the mat")
    assert len(documents) == 2 and len(query) == 384

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b))

    assert dot(query, documents[0]) > 0.99 > dot(query, documents[1])
