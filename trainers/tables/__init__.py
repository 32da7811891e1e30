"""Typed tables: a user's rows as they are (table.py), their column schema (schema.py) and the encodings
the families fit on a fold's training rows and carry with every model (encoding.py)."""
from trainers.tables.encoding import MAX_ONEHOT, MAX_ORDINAL, TableEncoding
from trainers.tables.schema import MAX_CELL_CHARS, MAX_COLUMNS, Column, ColumnSchema, TableError, infer
from trainers.tables.table import Table, as_table, is_table

__all__ = ["MAX_CELL_CHARS", "MAX_COLUMNS", "MAX_ONEHOT", "MAX_ORDINAL", "Column", "ColumnSchema", "Table", "as_table",
           "TableEncoding", "TableError", "infer", "is_table"]
