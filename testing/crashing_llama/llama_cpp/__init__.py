"""A FAKE ``llama_cpp`` that shadows the real one (PYTHONPATH) in a test's subprocess, so
``python -m llama_cpp.server`` starts the stand-in below: a server that dies of a signal as a
llama.cpp build that cannot run on its CPU does (tests/test_embedded_build.py)."""
