"""The Python code blocks of docs/instrumenting.md and of this client's README compile (no package
index is reachable here, so the OpenTelemetry packages they import cannot be installed: they are
checked with py_compile, the README agent is also run by test_live)."""

from __future__ import annotations

import os
import py_compile
import re
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = {
    "docs/instrumenting.md": os.path.join(HERE, "..", "..", "..", "docs", "instrumenting.md"),
    "clients/python/README.md": os.path.join(HERE, "..", "README.md"),
}


def python_blocks(path: str):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)


class GuideBlocks(unittest.TestCase):
    def test_python_blocks_compile(self):
        for name, path in DOCS.items():
            blocks = python_blocks(path)
            self.assertGreaterEqual(len(blocks), 2, f"{name}: no python blocks found")
            for i, code in enumerate(blocks, 1):
                with self.subTest(doc=name, block=i), tempfile.TemporaryDirectory() as tmp:
                    src = os.path.join(tmp, f"block{i}.py")
                    with open(src, "w", encoding="utf-8") as f:
                        f.write(code)
                    py_compile.compile(src, cfile=os.path.join(tmp, "out.pyc"), doraise=True)

    def test_a_broken_block_is_caught(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "bad.py")
            with open(src, "w", encoding="utf-8") as f:
                f.write(python_blocks(DOCS["docs/instrumenting.md"])[0].replace("def ", "def def ", 1))
            with self.assertRaises(py_compile.PyCompileError):
                py_compile.compile(src, cfile=os.path.join(tmp, "out.pyc"), doraise=True)

    def test_guide_names_the_trust_boundary_settings(self):
        with open(DOCS["docs/instrumenting.md"], encoding="utf-8") as f:
            text = f.read()
        for needle in ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20", "Content-Type:",
                       "OTEL_RESOURCE_ATTRIBUTES", "gen_ai.agent.name", "agentcost.team", "agentcost.decision_id"):
            self.assertIn(needle, text)


if __name__ == "__main__":
    unittest.main()
