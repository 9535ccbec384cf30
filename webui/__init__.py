"""Local LLM web UI: private chat, models, presets and document Q&A on llama.cpp."""

__version__ = "0.1.0"
