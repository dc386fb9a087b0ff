"""Parses OpenMetrics text files with prometheus_client's parser (the reference one) and
prints, per file, every sample as {name, labels, value} and every family's type, as JSON.
A file the parser rejects fails with its error."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families = []
    for family in text_string_to_metric_families(text):
        families.append({
            "name": family.name,
            "type": family.type,
            "unit": family.unit,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value}
                for s in family.samples
            ],
        })
    out.append(families)
print(json.dumps(out))
