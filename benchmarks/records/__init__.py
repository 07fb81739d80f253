"""The benchmark records the book quotes, installed with the package as `reid.records` (see pyproject.toml), so that
a chapter reads them wherever it runs: `reid.results.record_text(name)`."""
