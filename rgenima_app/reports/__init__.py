"""Reports: figures and self-contained HTML reports."""
