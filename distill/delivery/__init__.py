"""Everything after fit: export, ONNX, loading, the report card, bench and predict."""
