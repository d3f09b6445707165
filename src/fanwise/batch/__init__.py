"""Batch files: one request per JSONL line, results written as they settle, resumable."""

from fanwise.batch.lines import BatchLine, LineError, LineReader, parse_line
from fanwise.batch.runner import (
    BatchSummary,
    bad_line_record,
    output_line,
    output_record,
    run_batch,
)

__all__ = [
    "BatchLine",
    "BatchSummary",
    "LineError",
    "LineReader",
    "bad_line_record",
    "output_line",
    "output_record",
    "parse_line",
    "run_batch",
]
